package processor

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/internal/testbroker"
	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
)

// TestRecordThatCannotApplyIsDeadLettered: a valid record whose
// transaction fails however often it is tried, while the store takes other
// writes, is dead-lettered with code apply_failed and skipped; the records
// around it are applied and the offset moves past it. A store that refuses
// every write still stops the partition.
func TestRecordThatCannotApplyIsDeadLettered(t *testing.T) {
	b := testbroker.Start(t)
	cfg := expiryConfig()
	cfg.Brokers, cfg.DeadLetterTopic = b.Addrs, testbroker.Name(t, "dead")
	b.CreateTopics(t, 1, cfg.DeadLetterTopic)
	s, err := state.Open(state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Own(evUnit); err != nil {
		t.Fatal(err)
	}
	m, err := newMetrics(prometheus.NewRegistry(), s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &Processor{cfg: cfg, store: s, m: m, logged: map[string]bool{}, dlq: newDeadLetters(cfg, m), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	defer p.dlq.close()
	c := &partitionConsumer{p: p, unit: evUnit, topic: "events", applied: -1}
	tries := 0
	c.join = &joiner{rules: newRules(cfg), clock: &clock{}, wall: testclock.Now, fail: func(r schemas.Record) error {
		if r.TaskID == "poison" {
			tries++
			return errors.New("this record breaks the join")
		}
		return nil
	}}
	var batch []decoded
	for i, id := range []string{"task-0", "task-1", "poison", "task-3", "task-4"} {
		batch = append(batch, decoded{msg: kafka.Message{Topic: "events", Offset: int64(10 + i), Key: []byte(id)}, rec: evStart(id, float64(i))})
	}
	ctx := context.Background()
	if err := c.apply(ctx, batch); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if got := s.OpenTasksOf(evUnit); got != 4 {
		t.Errorf("open tasks %d, want the 4 records around the poison one", got)
	}
	if off, _, _ := s.LastOffset(evUnit); off != 14 || c.applied != 14 {
		t.Errorf("applied offset %d (consumer %d), want 14", off, c.applied)
	}
	if tries != 3 {
		t.Errorf("the poison record was tried %d times, want 3 (in the batch, alone, alone again)", tries)
	}
	if got := testutil.ToFloat64(m.invalid.WithLabelValues("events", CodeApplyFailed)); got != 1 {
		t.Errorf("invalid{code=apply_failed} = %v, want 1", got)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: b.Addrs, Topic: cfg.DeadLetterTopic, Partition: 0, MaxWait: 500 * time.Millisecond})
	defer r.Close()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	dl, err := r.FetchMessage(rctx)
	if err != nil {
		t.Fatalf("reading the dead-letter topic: %v", err)
	}
	headers := map[string]string{}
	for _, h := range dl.Headers {
		headers[h.Key] = string(h.Value)
	}
	if string(dl.Key) != "poison" || headers[HeaderErrorCode] != CodeApplyFailed || headers[HeaderSourceOffset] != "12" ||
		headers[HeaderError] != "cannot apply record: cannot update state of events partition 0: this record breaks the join" {
		t.Errorf("dead letter key %q headers %v", dl.Key, headers)
	}

	// A store that refuses every write: the partition stops, nothing is
	// dead-lettered.
	s.Close()
	more := []decoded{{msg: kafka.Message{Topic: "events", Offset: 15, Key: []byte("task-5")}, rec: evStart("task-5", 5)}}
	if err := c.apply(ctx, more); !errors.Is(err, state.ErrClosed) {
		t.Errorf("apply on a closed store: %v, want ErrClosed", err)
	}
	if got := testutil.ToFloat64(m.invalid.WithLabelValues("events", CodeApplyFailed)); got != 1 {
		t.Errorf("after a store failure invalid{code=apply_failed} = %v, want still 1", got)
	}
}
