package schemas

import (
	"encoding/json"
	"testing"
)

func BenchmarkDecode(b *testing.B) {
	values := make([][]byte, len(benchRecords))
	size := 0
	for i, r := range benchRecords {
		v, err := Encode(r)
		if err != nil {
			b.Fatal(err)
		}
		values[i] = v
		size += len(v)
	}
	b.SetBytes(int64(size / len(values)))
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if _, err := Decode(values[n%len(values)]); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkDecodeStdlibBaseline is encoding/json into a struct of the same
// fields, without any of Decode's checks, for comparison.
func BenchmarkDecodeStdlibBaseline(b *testing.B) {
	values := make([][]byte, len(benchRecords))
	for i, r := range benchRecords {
		values[i], _ = Encode(r)
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		var v struct {
			Schema        string `json:"schema"`
			Kind          string `json:"kind"`
			TaskID        string `json:"task_id"`
			EventName     string `json:"event_name"`
			Time          string `json:"time"`
			PipelineID    string `json:"pipeline_id"`
			ProcessID     *int64 `json:"process_id"`
			Error         string `json:"error"`
			OpID          string `json:"op_id"`
			Host          string `json:"host"`
			Port          int    `json:"port"`
			Operation     string `json:"operation"`
			BytesSent     int64  `json:"bytes_sent"`
			BytesReceived int64  `json:"bytes_received"`
		}
		if err := json.Unmarshal(values[n%len(values)], &v); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}
