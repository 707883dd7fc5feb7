package deadletter

import (
	"bytes"
	"testing"

	"github.com/segmentio/kafka-go"
)

func TestRecordAndFit(t *testing.T) {
	m := Record([]byte("k"), []byte("v"), "bad", kafka.Header{Key: HeaderPublisher, Value: []byte("elasticsearch")})
	if len(m.Headers) != 2 || m.Headers[0].Key != HeaderError || string(m.Headers[0].Value) != "bad" || m.Headers[1].Key != HeaderPublisher {
		t.Fatalf("headers %v", m.Headers)
	}
	if got := Fit(m, 1<<20); len(got.Headers) != 2 || string(got.Value) != "v" {
		t.Errorf("a small record was changed: %+v", got)
	}
	big := Record(bytes.Repeat([]byte("k"), 10), bytes.Repeat([]byte("v"), 5000), "too large")
	cut := Fit(big, 2000)
	if Size(cut) > 2000 || !bytes.HasPrefix(big.Value, cut.Value) || cut.Headers[len(cut.Headers)-1].Key != HeaderCut ||
		string(cut.Headers[len(cut.Headers)-1].Value) != "5000" {
		t.Errorf("cut record: size %d, headers %v", Size(cut), cut.Headers)
	}
	if again := Fit(cut, 2000); len(again.Headers) != len(cut.Headers) || len(again.Value) != len(cut.Value) {
		t.Error("Fit of a fitted record changed it")
	}
}
