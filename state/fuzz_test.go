package state

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pipetel/pipetel/schemas"
)

// FuzzDecodeValue feeds arbitrary stored values to decodeValue for every
// type the store keeps as JSON. A value must either fail with an error that
// names its key, or decode into something that encodes again and comes back
// identical: what Batch.put writes after a read must read back the same.
func FuzzDecodeValue(f *testing.F) {
	f.Add([]byte(`{"hs":true,"en":"ingest","st":"2024-05-01T12:00:00Z","et":"0001-01-01T00:00:00Z","rt":[1,2],"fs":"2024-05-01T12:00:00Z"}`))
	f.Add([]byte(`{"t":1714564800000000000,"e":{"task_id":"t","start_time":null,"retry_count":2}}`))
	f.Add([]byte(`{"db":[1,5],"e":[{"n":"load","s":"completed","c":2,"r":1,"d":{"c":[1,1,0],"s":3.5}}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, val []byte) {
		key := []byte("pe\x00\x00\x00\x01task")
		targets := []func() any{
			func() any { return new(PendingEvent) },
			func() any { return new(PendingNetwork) },
			func() any { return new(schemas.EventMetric) },
			func() any { return new(schemas.NetworkMetric) },
			func() any { return new(outboxItem) },
			func() any { return new(map[string]int64) }, // retry statistics
			func() any { return new(Aggregates) },       // aggregates of earlier versions, one value per unit
		}
		for _, newV := range targets {
			v := newV()
			if err := decodeValue(key, val, v); err != nil {
				if !strings.HasPrefix(err.Error(), `cannot decode stored value of key "pe\x00\x00\x00\x01task": `) {
					t.Fatalf("%T: error does not name the key: %v", v, err)
				}
				continue
			}
			enc, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("%T decoded from %q does not encode: %v", v, val, err)
			}
			w := newV()
			if err := decodeValue(key, enc, w); err != nil {
				t.Fatalf("%T: re-encoded %s does not decode: %v", v, enc, err)
			}
			enc2, err := json.Marshal(w)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, enc2) {
				t.Fatalf("%T: encoding not stable:\n%s\n%s", v, enc, enc2)
			}
		}
	})
}

// FuzzNetID checks that netID is one-to-one on the ids the decoder accepts
// (valid UTF-8, so an op id never starts with 0xff) and that splitNetID,
// which parses keys read from disk, inverts it and never panics.
func FuzzNetID(f *testing.F) {
	f.Add("task", "op", []byte("task\x00op"))
	f.Add("a\x00b", "", []byte("a\x00\xffb\x00"))
	f.Add("a", "b\x00", []byte("\x00\x00\xff"))
	f.Add("", "", []byte{})
	f.Fuzz(func(t *testing.T, task, op string, raw []byte) {
		splitNetID(raw) // must not panic on any key
		if !utf8.ValidString(task) || !utf8.ValidString(op) {
			return
		}
		id := netID(task, op)
		gotTask, gotOp := splitNetID(id)
		if gotTask != task || gotOp != op {
			t.Fatalf("splitNetID(netID(%q, %q)) = %q, %q", task, op, gotTask, gotOp)
		}
		if !strings.Contains(task, "\x00") && !bytes.Equal(id, []byte(task+"\x00"+op)) {
			t.Fatalf("netID(%q, %q) = %q, want the plain form", task, op, id)
		}
	})
}
