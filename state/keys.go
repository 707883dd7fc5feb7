package state

import (
	"encoding/binary"
	"math"
)

// Stream names the input topic a partition belongs to. Event and network
// records are joined independently, so each (stream, partition) is a unit of
// state that can move between instances on its own.
type Stream byte

// The two input streams.
const (
	Events  Stream = 'e'
	Network Stream = 'n'
)

func (s Stream) String() string {
	switch s {
	case Events:
		return "events"
	case Network:
		return "network"
	}
	return "unknown"
}

// Unit is one partition of one input stream: the unit of ownership.
type Unit struct {
	Stream    Stream
	Partition int32
}

// Key tags. Two bytes each, followed by the partition as 4 big-endian bytes
// (except the outbox, which is instance-local and not partition state).
var (
	tagOffset = [2]byte{'o', 'f'} // + stream + partition → last applied offset

	tagPendingEvent  = [2]byte{'p', 'e'} // + p + task
	tagFinishedEvent = [2]byte{'f', 'e'} // + p + task
	tagEventFailed   = [2]byte{'x', 'f'} // + p + task
	tagEventDuration = [2]byte{'x', 'd'} // + p + ordered duration + task
	tagEventExpiry   = [2]byte{'x', 'r'} // + p + end time + task
	tagRetryStats    = [2]byte{'r', 's'} // + p
	tagEventCounts   = [2]byte{'c', 'e'} // + p → pending count

	tagPendingNet  = [2]byte{'p', 'n'} // + p + task \x00 op
	tagFinishedNet = [2]byte{'f', 'n'} // + p + task \x00 op
	tagNetFailed   = [2]byte{'y', 'f'} // + p + task \x00 op
	tagNetLatency  = [2]byte{'y', 'l'} // + p + ordered latency + task \x00 op
	tagNetExpiry   = [2]byte{'y', 'r'} // + p + end time + task \x00 op
	tagNetCounts   = [2]byte{'c', 'n'} // + p → pending count

	tagOutbox = [2]byte{'o', 'b'} // + publisher \x00 + seq
)

// countTag is the tag of a unit's open-entry count.
func countTag(s Stream) [2]byte {
	if s == Network {
		return tagNetCounts
	}
	return tagEventCounts
}

// unitTags lists every tag that holds a unit's state, for copying or dropping
// a unit by prefix.
func unitTags(s Stream) [][2]byte {
	if s == Network {
		return [][2]byte{tagPendingNet, tagFinishedNet, tagNetFailed, tagNetLatency, tagNetExpiry, tagNetExpiryBucket, tagNetCounts, tagNetAggregates, tagNetDeadline, tagNetDeadlineExact, tagNetStreamTime, tagNetNewestRecord}
	}
	return [][2]byte{tagPendingEvent, tagFinishedEvent, tagEventFailed, tagEventDuration, tagEventExpiry, tagEventExpiryBucket, tagRetryStats, tagEventCounts, tagAggregates, tagEventDeadline, tagEventDeadlineExact, tagStreamTime, tagNewestRecord}
}

func prefix(tag [2]byte, p int32) []byte {
	k := make([]byte, 6, 64)
	k[0], k[1] = tag[0], tag[1]
	binary.BigEndian.PutUint32(k[2:], uint32(p))
	return k
}

func key(tag [2]byte, p int32, parts ...[]byte) []byte {
	k := prefix(tag, p)
	for _, part := range parts {
		k = append(k, part...)
	}
	return k
}

func offsetKey(u Unit) []byte {
	k := []byte{tagOffset[0], tagOffset[1], byte(u.Stream), 0, 0, 0, 0}
	binary.BigEndian.PutUint32(k[3:], uint32(u.Partition))
	return k
}

// netID is the identity of a network operation inside its task: the task id,
// a 0 byte, the op id. The decoder accepts NUL in ids, so a 0 byte inside the
// task id is written as 0 0xff: 0xff never occurs in UTF-8, so it cannot start
// an op id, and ("a\x00b", "") stays apart from ("a", "b\x00"). Ids without
// NUL keep their plain form.
func netID(taskID, opID string) []byte {
	b := make([]byte, 0, len(taskID)+1+len(opID))
	for i := 0; i < len(taskID); i++ {
		b = append(b, taskID[i])
		if taskID[i] == 0 {
			b = append(b, 0xff)
		}
	}
	b = append(b, 0)
	return append(b, opID...)
}

// splitNetID is the inverse of netID.
func splitNetID(id []byte) (taskID, opID string) {
	task := make([]byte, 0, len(id))
	for i := 0; i < len(id); i++ {
		switch {
		case id[i] != 0:
			task = append(task, id[i])
		case i+1 < len(id) && id[i+1] == 0xff:
			task = append(task, 0)
			i++
		default:
			return string(task), string(id[i+1:])
		}
	}
	return string(task), ""
}

// ordered encodes a signed quantity so that byte order equals numeric order.
func ordered(v int64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v)^(1<<63))
	return b[:]
}

func fromOrdered(b []byte) int64 {
	return int64(binary.BigEndian.Uint64(b) ^ (1 << 63))
}

func secondsToNanos(s float64) int64 {
	if s >= math.MaxInt64/1e9 {
		return math.MaxInt64
	}
	if s <= math.MinInt64/1e9 {
		return math.MinInt64
	}
	return int64(math.Round(s * 1e9))
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
