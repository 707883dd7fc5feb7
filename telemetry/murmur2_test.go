package telemetry_test

import "testing"

// javaMurmur2 is org.apache.kafka.common.utils.Utils.murmur2, written here
// independently of kafka-go so that the tests check the producer's placement
// against the Java client's rather than against kafka-go itself.
func javaMurmur2(data []byte) int32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	n := len(data)
	h := seed ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := data[n&^3:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// javaPartition is the Java client's partition for a keyed record:
// Utils.toPositive(Utils.murmur2(key)) % numPartitions.
func javaPartition(key []byte, numPartitions int) int {
	return int(javaMurmur2(key)&0x7fffffff) % numPartitions
}

// TestJavaMurmur2 checks the test's murmur2 against the vectors of Kafka's
// UtilsTest.testMurmur2.
func TestJavaMurmur2(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	} {
		if got := javaMurmur2([]byte(c.in)); got != c.want {
			t.Errorf("javaMurmur2(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}
