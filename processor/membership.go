package processor

import (
	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/internal/membership"
)

// advertisingBalancer is kafka-go's range assignment with this instance's
// HTTP address in the member metadata, so that any member can learn from
// DescribeGroups which instance serves which partitions.
type advertisingBalancer struct {
	kafka.RangeGroupBalancer
	addr string
}

func (b advertisingBalancer) UserData() ([]byte, error) { return membership.UserData(b.addr), nil }
