package state

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/pipetel/pipetel/schemas"
)

func codecSamples() []any {
	// Codec vectors: the first and last instants RFC 3339 can write, and
	// one in between; no retention ever sees them.
	t1 := time.Unix(1_795_000_000, 123456789).UTC()
	t0 := time.Unix(-62135596800, 1).UTC()         // 0001-01-01T00:00:00.000000001Z
	t9 := time.Unix(253402300799, 999999999).UTC() // 9999-12-31T23:59:59.999999999Z
	pid, neg := int64(48213), int64(-7)
	d, z, skew := 1.25, 0.0, -0.5
	return []any{
		PendingEvent{},
		PendingEvent{HasStart: true, EventName: "load", PipelineID: "p", ProcessID: &pid, StartTime: t1, FirstSeen: t1, Deadline: t1.Add(time.Hour).UnixNano()},
		PendingEvent{HasEnd: true, EndTime: t9, Error: strings.Repeat("é", 300), Retries: []int64{1, -2, math.MaxInt64, math.MinInt64}, UntrackedRetries: 3, FirstSeen: t0, ProcessID: &neg, Deadline: -1},
		PendingNetwork{},
		PendingNetwork{HasStart: true, HasEnd: true, Host: "db", Port: 65535, Operation: "query", StartTime: t1, EndTime: t9, BytesSent: math.MaxInt64, BytesReceived: -1, Error: "reset", FirstSeen: t1, Deadline: 9},
		schemas.EventMetric{},
		schemas.EventMetric{TaskID: "t", EventName: "e", PipelineID: "p", ProcessID: &pid, StartTime: &t1, EndTime: &t9, DurationSeconds: &d, Status: schemas.StatusFailed, Error: "boom", RetryCount: 7},
		schemas.EventMetric{TaskID: "t\x00x", StartTime: &t0, DurationSeconds: &skew, Status: schemas.StatusTimedOut},
		schemas.NetworkMetric{},
		schemas.NetworkMetric{TaskID: "t", OpID: "o", Host: "h", Port: 1, Operation: "remote_call", StartTime: &t1, EndTime: &t1, LatencySeconds: &z, BytesSent: 10, BytesReceived: 1 << 40, Status: schemas.StatusCompleted, Error: ""},
		outboxItem{Enqueued: t1.UnixNano(), Event: &schemas.EventMetric{TaskID: "t", StartTime: &t1, DurationSeconds: &d}},
		outboxItem{Enqueued: -5, Network: &schemas.NetworkMetric{TaskID: "t", OpID: "o", EndTime: &t9}},
		storedEventSeries{},
		storedEventSeries{EventSeries: EventSeries{EventName: "load\x00x", Status: "completed", Count: 3, Retries: math.MaxUint64,
			Duration: Histogram{Counts: []uint64{1, 0, math.MaxUint64}, Sum: 1.25}}, Gen: 7},
		storedNetworkSeries{},
		storedNetworkSeries{NetworkSeries: NetworkSeries{Operation: "query", Status: "failed", Count: 1, BytesSent: 1 << 40, BytesReceived: math.MaxUint64,
			Latency: Histogram{Counts: []uint64{0, 1}, Sum: 0.25}}, Gen: math.MaxUint64},
		aggMeta{},
		aggMeta{Gen: 2, Bounds: []float64{0.005, 1, 300}, Names: 1000, Folded: math.MaxUint64},
	}
}

// decodeAs decodes data into a new value of sample's type.
func decodeAs(sample any, data []byte) (any, error) {
	switch sample.(type) {
	case PendingEvent:
		var v PendingEvent
		err := decodeValue([]byte("k"), data, &v)
		return v, err
	case PendingNetwork:
		var v PendingNetwork
		err := decodeValue([]byte("k"), data, &v)
		return v, err
	case schemas.EventMetric:
		var v schemas.EventMetric
		err := decodeValue([]byte("k"), data, &v)
		return v, err
	case schemas.NetworkMetric:
		var v schemas.NetworkMetric
		err := decodeValue([]byte("k"), data, &v)
		return v, err
	case storedEventSeries:
		var v storedEventSeries
		err := decodeValue([]byte("k"), data, &v)
		return v, err
	case storedNetworkSeries:
		var v storedNetworkSeries
		err := decodeValue([]byte("k"), data, &v)
		return v, err
	case aggMeta:
		var v aggMeta
		err := decodeValue([]byte("k"), data, &v)
		return v, err
	default:
		var v outboxItem
		err := decodeValue([]byte("k"), data, &v)
		return v, err
	}
}

func sameJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

func TestCodecRoundTrip(t *testing.T) {
	for _, v := range codecSamples() {
		data, err := encodeValue(v)
		if err != nil {
			t.Fatalf("encode %+v: %v", v, err)
		}
		if data[0] == '{' {
			t.Fatalf("%T encoded as JSON", v)
		}
		got, err := decodeAs(v, data)
		if err != nil {
			t.Fatalf("decode %T: %v", v, err)
		}
		if !sameJSON(t, got, v) {
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(v)
			t.Errorf("round trip of %T:\n got %s\nwant %s", v, g, w)
		}
		// Every proper prefix is an error, never a panic or a silent value.
		for n := range len(data) {
			if _, err := decodeAs(v, data[:n]); err == nil {
				t.Errorf("%T: a prefix of %d of %d bytes decoded", v, n, len(data))
			}
		}
		if _, err := decodeAs(v, append(data, 0)); err == nil || !strings.Contains(err.Error(), "1 bytes after the value") {
			t.Errorf("%T with a trailing byte: %v, want an error", v, err)
		}
	}
}

// TestCodecReadsJSON: values stored as JSON by earlier versions (and in
// their changelogs) still decode.
func TestCodecReadsJSON(t *testing.T) {
	for _, v := range codecSamples() {
		js, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if _, isOutbox := v.(outboxItem); isOutbox {
			continue // outbox items are instance-local and drained; no old format needed, but JSON decodes too:
		}
		got, err := decodeAs(v, js)
		if err != nil || !sameJSON(t, got, v) {
			t.Errorf("JSON %s: got %+v, %v", js, got, err)
		}
	}
}

func TestCodecErrorsNameTheProblem(t *testing.T) {
	var pe PendingEvent
	err := decodeValue([]byte("pe-key"), []byte{tagEventMetricV1, 0}, &pe)
	if err == nil || !strings.Contains(err.Error(), `cannot decode stored value of key "pe-key": got tag 0xb3, expected a pending event (tag 0xb1)`) {
		t.Errorf("wrong tag: %v", err)
	}
	var m schemas.EventMetric
	bad := appendEventMetric(nil, schemas.EventMetric{StartTime: ptrTime(time.Unix(5, 0))})
	bad[len(bad)-2] = 0xff // the nanoseconds varint: not a complete one any more
	if err := decodeValue([]byte("k"), bad, &m); err == nil {
		t.Error("a damaged time decoded")
	}
}

// TestAggregateCodecRefusesLaterFlags: an aggregate value with flags set was
// written by a later version, whose fields this one would misread.
func TestAggregateCodecRefusesLaterFlags(t *testing.T) {
	data := appendAggMeta(nil, aggMeta{Gen: 1})
	data[1] = 4
	var m aggMeta
	err := decodeValue([]byte("ag-key"), data, &m)
	if err == nil || !strings.Contains(err.Error(), `cannot decode stored value of key "ag-key": flags 0x4, expected none`) {
		t.Errorf("flags set: %v", err)
	}
}

func ptrTime(t time.Time) *time.Time { return &t }

// FuzzDecodeStoredValue: bytes from disk or the changelog never panic the
// decoders, and whatever decodes encodes back to a value that decodes the
// same.
func FuzzDecodeStoredValue(f *testing.F) {
	for _, v := range codecSamples() {
		data, _ := encodeValue(v)
		f.Add(data)
	}
	f.Add([]byte(`{"hs":true}`))
	f.Add([]byte{tagPendingEventV1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{tagEventSeriesV1, 0, 0, 0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{tagAggMetaV1, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, sample := range []any{PendingEvent{}, PendingNetwork{}, schemas.EventMetric{}, schemas.NetworkMetric{}, outboxItem{},
			storedEventSeries{}, storedNetworkSeries{}, aggMeta{}} {
			v, err := decodeAs(sample, data)
			if err != nil || (len(data) > 0 && data[0] == '{') {
				continue
			}
			again, err := encodeValue(v)
			if err != nil {
				t.Fatalf("cannot encode decoded %T: %v", v, err)
			}
			v2, err := decodeAs(sample, again)
			if err != nil || !sameJSON(t, v, v2) {
				t.Fatalf("%T: re-encoded value decodes to %+v (%v), want %+v", v, v2, err, v)
			}
			if third, _ := encodeValue(v2); string(third) != string(again) {
				t.Fatalf("%T: encoding is not stable: %x then %x", v, again, third)
			}
		}
	})
}
