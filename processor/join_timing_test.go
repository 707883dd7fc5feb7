package processor

import (
	"context"
	"fmt"
	"testing"

	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
)

// BenchmarkJoin applies start+end pairs in batches of 1000 records to an
// on-disk store with one publisher outbox and the changelog bookkeeping of a
// real run (an in-memory log), like one partition goroutine does.
func BenchmarkJoin(b *testing.B) {
	for _, inFlight := range []int{1, 10_000} {
		b.Run(fmt.Sprintf("open=%d", inFlight), func(b *testing.B) {
			s, err := state.Open(state.Options{Dir: b.TempDir(), Publishers: []string{"p"}, Changelog: &memLog{}})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if err := s.Own(evUnit); err != nil {
				b.Fatal(err)
			}
			cfg := Config{Brokers: []string{"unused:1"}}.WithDefaults()
			j := &joiner{rules: newRules(cfg), clock: &clock{}, wall: testclock.Now}
			// Records: starts run inFlight tasks ahead of their ends.
			n := b.N
			recs := make([]schemas.Record, 0, 2*n)
			for i := 0; i < n+inFlight; i++ {
				if i < n {
					recs = append(recs, evStart(fmt.Sprintf("task-%09d", i), float64(i)/1000))
				}
				if k := i - inFlight; k >= 0 && k < n {
					recs = append(recs, evEnd(fmt.Sprintf("task-%09d", k), float64(i)/1000, ""))
				}
			}
			b.ResetTimer()
			for start := 0; start < len(recs); start += 1000 {
				chunk := recs[start:min(start+1000, len(recs))]
				err := s.Update(context.Background(), evUnit, func(bt *state.Batch) error {
					var st joinStats
					for _, r := range chunk {
						if err := j.apply(bt, r, &st); err != nil {
							return err
						}
					}
					return bt.SetOffset(int64(start + len(chunk)))
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(recs))/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tasks/s")
		})
	}
}
