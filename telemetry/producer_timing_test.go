package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipetel/pipetel/telemetry"
)

// BenchmarkProducer measures records/s from the calls to the embedded broker's
// acknowledgement: b.N records (alternating event start and end over 1000 task
// ids), then one Flush. Run with a fixed count, for example
// -benchtime=500000x, since kfake keeps every record on the heap.
func BenchmarkProducer(b *testing.B) {
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("task-%08d", i)
	}
	failed := errors.New("connection reset by peer")
	send := func(log *telemetry.Logger, ctx context.Context, i int) error {
		id := ids[i%len(ids)]
		if i%2 == 0 {
			return log.StartEvent(ctx, "ingest", id, telemetry.WithPipelineID("nightly-batch"), telemetry.WithProcessID(4242))
		}
		var err error
		if i%10 == 1 {
			err = failed
		}
		return log.EndEvent(ctx, id, err)
	}
	for _, bc := range []struct {
		name     string
		parallel bool
		opts     []telemetry.Option
	}{
		{"defaults", false, nil},
		{"defaults/parallel", true, nil},
		{"batch5000", false, []telemetry.Option{telemetry.WithBatchSize(5000), telemetry.WithBatchTimeout(5 * time.Millisecond)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := newCluster(b, 8)
			p := newProducer(b, c, bc.opts...)
			log := p.Logger()
			ctx := context.Background()
			// Warm the writer's metadata outside the measurement.
			must(b, log.RecordRetry(ctx, "warm-up"))
			must(b, p.Flush(ctx))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			if bc.parallel {
				var next atomic.Int64
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := send(log, ctx, int(next.Add(1))); err != nil {
							b.Error(err)
							return
						}
					}
				})
			} else {
				for i := range b.N {
					if err := send(log, ctx, i); err != nil {
						b.Fatal(err)
					}
				}
			}
			must(b, p.Flush(ctx))
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
		})
	}
}
