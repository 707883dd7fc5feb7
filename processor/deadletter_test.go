package processor

import (
	"bytes"
	"errors"
	"strconv"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/internal/deadletter"
)

func TestDeadLetterFitsTheBound(t *testing.T) {
	const maxBytes = 1_000_000
	size := deadletter.Size
	header := func(m kafka.Message, key string) (string, bool) {
		for _, h := range m.Headers {
			if h.Key == key {
				return string(h.Value), true
			}
		}
		return "", false
	}
	f := func(name string, keyLen, valueLen int, wantKeyCut, wantCut bool) {
		t.Helper()
		key := bytes.Repeat([]byte("k"), keyLen)
		value := bytes.Repeat([]byte("v"), valueLen)
		in := decoded{msg: kafka.Message{Topic: "pipetel.events", Partition: 3, Offset: 42, Key: key, Value: value}, err: errors.New("invalid record: too large")}
		m := deadLetter(in, "oversized", maxBytes)
		if got := size(m); got > maxBytes {
			t.Errorf("%s: dead letter of %d bytes, bound %d", name, got, maxBytes)
		}
		if v, ok := header(m, HeaderCut); ok != wantCut {
			t.Errorf("%s: %s header present %v, want %v", name, HeaderCut, ok, wantCut)
		} else if ok && v != strconv.Itoa(valueLen) {
			t.Errorf("%s: %s = %q, want the original length %d", name, HeaderCut, v, valueLen)
		}
		if v, ok := header(m, HeaderKeyCut); ok != wantKeyCut {
			t.Errorf("%s: %s header present %v, want %v", name, HeaderKeyCut, ok, wantKeyCut)
		} else if ok && v != strconv.Itoa(keyLen) {
			t.Errorf("%s: %s = %q, want the original length %d", name, HeaderKeyCut, v, keyLen)
		}
		if !bytes.HasPrefix(value, m.Value) || !bytes.HasPrefix(key, m.Key) {
			t.Errorf("%s: the dead letter must keep the first bytes of key and value", name)
		}
		if !wantCut && len(m.Value) != valueLen || !wantKeyCut && len(m.Key) != keyLen {
			t.Errorf("%s: key %d and value %d bytes, want them whole (%d, %d)", name, len(m.Key), len(m.Value), keyLen, valueLen)
		}
		if wantCut && len(m.Value) < maxBytes/2-1024 && !wantKeyCut {
			t.Errorf("%s: kept only %d bytes of the value", name, len(m.Value))
		}
		if code, _ := header(m, HeaderErrorCode); code != "oversized" {
			t.Errorf("%s: error code header %q", name, code)
		}
		if off, _ := header(m, HeaderSourceOffset); off != "42" {
			t.Errorf("%s: source offset header %q", name, off)
		}
	}
	f("small", 10, 100, false, false)
	f("just fits", 10, maxBytes-2000, false, false)
	f("1.5 MB value", 10, 1_500_000, false, true)
	f("huge key", 1_200_000, 10, true, false)
	f("huge key and value", 800_000, 900_000, true, true)
}
