package processor

import (
	"bytes"
	"testing"
)

// FuzzDecodeChange: changelog records come from the wire on restore. Any
// bytes decode to a change or an error, never a panic, and a set round-trips.
func FuzzDecodeChange(f *testing.F) {
	f.Add([]byte("fe\x00\x00\x00\x01task"), []byte(`s{"task_id":"task"}`))
	f.Add([]byte("xf\x00\x00\x00\x01task"), []byte("s"))
	f.Add([]byte("pe\x00\x00\x00\x01task"), []byte(nil))
	f.Add([]byte("k"), []byte("x"))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		ch, err := decodeChange(key, value)
		if err != nil {
			return
		}
		if ch.Delete {
			if len(value) != 0 {
				t.Fatalf("value %q decoded as a delete", value)
			}
			return
		}
		if got := encodeChangeValue(ch.Value); !bytes.Equal(got, value) {
			t.Fatalf("round trip %q -> %q", value, got)
		}
	})
}
