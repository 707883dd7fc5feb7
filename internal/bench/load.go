package bench

import (
	"container/heap"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/schemas"
)

// The synthetic pipeline: a task starts every taskSpacing of record time
// and lasts 5 ms to 5 s (log-uniform), with 0–3 retries, and one in ten
// fails, so records of thousands of tasks interleave as in real telemetry.
const (
	taskSpacing = 20 * time.Microsecond
	minDuration = 5 * time.Millisecond
	maxDuration = 5 * time.Second
)

var benchEventNames = []string{"extract", "transform", "load", "validate", "aggregate", "publish"}

type pendingRecord struct {
	at  time.Time
	seq int64 // ties keep a task's records in order
	rec schemas.Record
}

type recordHeap []pendingRecord

func (h recordHeap) Len() int { return len(h) }
func (h recordHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h recordHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *recordHeap) Push(x any)   { *h = append(*h, x.(pendingRecord)) }
func (h *recordHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// load produces the tasks' records in record-time order, keyed by task_id
// with the Murmur2 partitioner the SDK uses, and returns how many it wrote.
func load(ctx context.Context, brokers []string, tasks int, seed uint64) (int64, error) {
	w := &kafka.Writer{
		Addr: kafka.TCP(brokers...), Topic: schemas.DefaultEventsTopic, Transport: &kafka.Transport{},
		Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
		BatchSize: 4096, BatchBytes: 1 << 20, BatchTimeout: 2 * time.Millisecond, MaxAttempts: 5,
	}
	defer w.Close()
	var written int64
	buf := make([]kafka.Message, 0, 8192)
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		if err := w.WriteMessages(ctx, buf...); err != nil {
			return fmt.Errorf("cannot load synthetic records: %w", err)
		}
		written += int64(len(buf))
		buf = buf[:0]
		return nil
	}
	err := Generate(tasks, seed, time.Now(), func(r schemas.Record) error {
		v, err := schemas.Encode(r)
		if err != nil {
			return err
		}
		buf = append(buf, kafka.Message{Key: []byte(r.TaskID), Value: v})
		if len(buf) == cap(buf) {
			return flush()
		}
		return nil
	})
	if err != nil {
		return written, err
	}
	return written, flush()
}

// Generate calls emit with the records of the synthetic tasks in record-time
// order (a task's start, retries and end in that order). The same tasks and
// seed give the same records; their times end a minute before now, inside
// any retention.
func Generate(tasks int, seed uint64, now time.Time, emit func(schemas.Record) error) error {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	span := time.Duration(tasks)*taskSpacing + maxDuration
	base := now.Add(-span - time.Minute).UTC().Truncate(time.Millisecond)
	var h recordHeap
	var seq int64
	emitUntil := func(t time.Time) error {
		for h.Len() > 0 && !h[0].at.After(t) {
			if err := emit(heap.Pop(&h).(pendingRecord).rec); err != nil {
				return err
			}
		}
		return nil
	}
	push := func(r schemas.Record) {
		seq++
		heap.Push(&h, pendingRecord{at: r.Time, seq: seq, rec: r})
	}
	ratio := math.Log(float64(maxDuration) / float64(minDuration))
	for i := range tasks {
		start := base.Add(time.Duration(i) * taskSpacing)
		if err := emitUntil(start); err != nil {
			return err
		}
		id := fmt.Sprintf("bench-%08d", i)
		d := time.Duration(float64(minDuration) * math.Exp(rng.Float64()*ratio))
		pid := int64(1000 + i%64)
		push(schemas.Record{Schema: schemas.EventSchema, Kind: schemas.KindStart, TaskID: id, Time: start,
			EventName: benchEventNames[i%len(benchEventNames)], PipelineID: fmt.Sprintf("pipe-%d", i%50+1), ProcessID: &pid})
		retries := rng.IntN(4)
		for r := range retries {
			push(schemas.Record{Schema: schemas.EventSchema, Kind: schemas.KindRetry, TaskID: id,
				Time: start.Add(d * time.Duration(r+1) / time.Duration(retries+1))})
		}
		end := schemas.Record{Schema: schemas.EventSchema, Kind: schemas.KindEnd, TaskID: id, Time: start.Add(d)}
		if rng.IntN(10) == 0 {
			end.Error = "upstream returned 503"
		}
		push(end)
	}
	for h.Len() > 0 {
		if err := emit(heap.Pop(&h).(pendingRecord).rec); err != nil {
			return err
		}
	}
	return nil
}
