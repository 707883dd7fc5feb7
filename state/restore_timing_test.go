package state

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkRestore restores a unit of 200 000 open tasks from their
// changelog records (the pending entries a writer logged), the indexes
// derived again included.
func BenchmarkRestore(b *testing.B) {
	const tasks = 200_000
	u := Unit{Stream: Events, Partition: 0}
	start := time.Now()
	changes := make([]Change, tasks)
	for i := range changes {
		pe := PendingEvent{HasStart: true, EventName: "Load", StartTime: start, FirstSeen: start, Deadline: start.Add(time.Hour).UnixNano() + int64(i)}
		v, err := encodeValue(pe)
		if err != nil {
			b.Fatal(err)
		}
		changes[i] = Change{Key: key(tagPendingEvent, u.Partition, []byte(fmt.Sprintf("task-%07d", i))), Value: v}
	}
	for b.Loop() {
		b.StopTimer()
		s, err := Open(Options{Dir: b.TempDir(), NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		r, err := s.BeginRestore(u)
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range changes {
			if err := r.Apply(c); err != nil {
				b.Fatal(err)
			}
		}
		if err := r.Finish(int64(tasks)); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(tasks*b.N)/b.Elapsed().Seconds(), "records/s")
}
