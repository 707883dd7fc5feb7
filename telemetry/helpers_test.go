package telemetry_test

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/pipetel/pipetel/schemas"
)

// newCluster starts an embedded broker with the default topics, each with
// the given number of partitions, and returns it; it is closed at the end of
// the test.
func newCluster(tb testing.TB, partitions int32, opts ...kfake.Opt) *kfake.Cluster {
	tb.Helper()
	opts = append([]kfake.Opt{
		kfake.NumBrokers(1),
		kfake.SeedTopics(partitions, schemas.DefaultEventsTopic, schemas.DefaultNetworkTopic),
	}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		tb.Fatalf("cannot start kfake cluster: %v", err)
	}
	tb.Cleanup(c.Close)
	return c
}

// readAll reads every record of topic, partition by partition, each in offset
// order. It reads with a kafka.Conn rather than a kafka.Reader, which spends
// about a MaxWait per partition before its first fetch returns.
func readAll(tb testing.TB, addrs []string, topic string, partitions int) []kafka.Message {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	deadline, _ := ctx.Deadline()
	var all []kafka.Message
	for p := range partitions {
		conn, err := kafka.DialLeader(ctx, "tcp", addrs[0], topic, p)
		if err != nil {
			tb.Fatalf("cannot dial leader of %s/%d: %v", topic, p, err)
		}
		first, end, err := conn.ReadOffsets()
		if err != nil {
			conn.Close()
			tb.Fatalf("cannot read offsets of %s/%d: %v", topic, p, err)
		}
		if _, err := conn.Seek(first, kafka.SeekAbsolute); err != nil {
			conn.Close()
			tb.Fatalf("cannot seek %s/%d to %d: %v", topic, p, first, err)
		}
		for next := first; next < end; {
			conn.SetReadDeadline(deadline)
			batch := conn.ReadBatch(1, 10<<20)
			for {
				m, err := batch.ReadMessage()
				if err != nil {
					break
				}
				all = append(all, m)
				next = m.Offset + 1
			}
			if err := batch.Close(); err != nil {
				conn.Close()
				tb.Fatalf("cannot read %s/%d at %d: %v", topic, p, next, err)
			}
		}
		conn.Close()
	}
	return all
}

// stepClock returns a clock that advances by one millisecond and 1ns per
// call from a fixed UTC time, so that every record has a distinct, known
// time that survives encoding. A fixed date is safe here: these records are
// read back from the topic by the test, never by a processor, and Kafka
// keeps them by the producer's wall-clock timestamp, not this time.
func stepClock() (clock func() time.Time, at func(call int) time.Time) {
	base := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	at = func(call int) time.Time {
		return base.Add(time.Duration(call) * (time.Millisecond + time.Nanosecond))
	}
	calls := 0
	clock = func() time.Time {
		t := at(calls)
		calls++
		return t
	}
	return clock, at
}
