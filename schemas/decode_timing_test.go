package schemas

import "testing"

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
