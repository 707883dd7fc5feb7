package processor

import "github.com/segmentio/kafka-go"

// advertisingBalancer is kafka-go's range assignment with this instance's
// HTTP address in the member metadata, so that any member can learn from
// DescribeGroups which instance serves which partitions.
type advertisingBalancer struct {
	kafka.RangeGroupBalancer
	addr string
}

func (b advertisingBalancer) UserData() ([]byte, error) { return []byte(b.addr), nil }
