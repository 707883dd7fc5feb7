package schemas

import (
	"testing"
	"time"
)

var benchRecords = []Record{
	{Schema: EventSchema, Kind: KindStart, TaskID: "6f1c2d7e-0b7a-4c1e-9a53-2f0e8d1b4c77", EventName: "extract_orders",
		PipelineID: "nightly-etl", ProcessID: int64p(48213), Time: time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC)},
	{Schema: EventSchema, Kind: KindEnd, TaskID: "6f1c2d7e-0b7a-4c1e-9a53-2f0e8d1b4c77", Time: time.Date(2024, 5, 1, 12, 0, 3, 5, time.UTC)},
	{Schema: NetworkSchema, Kind: KindStart, TaskID: "6f1c2d7e-0b7a-4c1e-9a53-2f0e8d1b4c77", OpID: "op-17", Host: "orders-db.internal",
		Port: 5432, Operation: DefaultOperation, Time: time.Date(2024, 5, 1, 12, 0, 1, 0, time.UTC)},
	{Schema: NetworkSchema, Kind: KindEnd, TaskID: "6f1c2d7e-0b7a-4c1e-9a53-2f0e8d1b4c77", OpID: "op-17", BytesSent: 512,
		BytesReceived: 1048576, Time: time.Date(2024, 5, 1, 12, 0, 2, 0, time.UTC)},
}

// benchSink keeps results alive so that the compiler cannot put them on the
// stack, which would hide Encode's allocation.
var benchSink []byte

func BenchmarkEncode(b *testing.B) {
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		out, err := Encode(benchRecords[n%len(benchRecords)])
		if err != nil {
			b.Fatal(err)
		}
		benchSink = out
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkAppendEncode(b *testing.B) {
	b.ReportAllocs()
	buf := make([]byte, 0, 1024)
	n := 0
	for b.Loop() {
		var err error
		if buf, err = AppendEncode(buf[:0], benchRecords[n%len(benchRecords)]); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}
