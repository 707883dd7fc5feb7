package processor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
)

// memLog is a state.Changelog in memory that records each append's size.
type memLog struct {
	mu      sync.Mutex
	appends []int
}

func (l *memLog) Append(_ context.Context, _ state.Unit, changes []state.Change) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.appends = append(l.appends, len(changes))
	return int64(len(l.appends) - 1), nil
}

// TestBatchTooBigIsSplit: a batch whose changes exceed one changelog append
// is applied in halves, each with its own last offset, and nothing is lost.
func TestBatchTooBigIsSplit(t *testing.T) {
	log := &memLog{}
	s, err := state.Open(state.Options{Changelog: log, MaxChangeBytes: 1 << 10, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Own(evUnit))
	cfg := expiryConfig()
	m, err := newMetrics(prometheus.NewRegistry(), s, cfg)
	must(err)
	p := &Processor{cfg: cfg, store: s, m: m, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	c := &partitionConsumer{p: p, unit: evUnit, topic: "events", applied: -1}
	c.join = &joiner{rules: newRules(cfg), clock: &clock{}, wall: testclock.Now}
	var batch []decoded
	for i := range 64 {
		r := evStart(fmt.Sprintf("task-%03d", i), float64(i))
		batch = append(batch, decoded{msg: kafka.Message{Offset: int64(100 + i)}, rec: r})
	}
	must(c.applyValid(context.Background(), batch))
	if c.applied != 163 {
		t.Fatalf("applied offset %d, want 163", c.applied)
	}
	off, _, err := s.LastOffset(evUnit)
	must(err)
	if off != 163 || s.OpenTasksOf(evUnit) != 64 {
		t.Fatalf("state offset %d open %d, want 163 and 64", off, s.OpenTasksOf(evUnit))
	}
	if len(log.appends) < 2 {
		t.Fatalf("changelog appends %v: want the batch split", log.appends)
	}
}

// TestBigExpiryIsSpread: one record that makes more expire than one
// changelog append can carry is applied with fewer expiries, and the rest
// follow with the next records; the partition does not stop.
func TestBigExpiryIsSpread(t *testing.T) {
	s, err := state.Open(state.Options{Changelog: &memLog{}, MaxChangeBytes: 64 << 10, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Own(evUnit))
	cfg := expiryConfig()
	cfg.MaxOpenTasks = 10000
	m, err := newMetrics(prometheus.NewRegistry(), s, cfg)
	must(err)
	p := &Processor{cfg: cfg, store: s, m: m, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	c := &partitionConsumer{p: p, unit: evUnit, topic: "events", applied: -1}
	c.join = &joiner{rules: newRules(cfg), clock: &clock{}, wall: testclock.Now}
	const open = 1000
	offset := int64(0)
	apply := func(recs ...schemas.Record) {
		t.Helper()
		var batch []decoded
		for _, r := range recs {
			batch = append(batch, decoded{msg: kafka.Message{Offset: offset}, rec: r})
			offset++
		}
		must(c.applyValid(context.Background(), batch))
	}
	for i := 0; i < open; i += 10 {
		var recs []schemas.Record
		for j := i; j < i+10; j++ {
			recs = append(recs, evStart(fmt.Sprintf("task-%04d", j), float64(j)/1000))
		}
		apply(recs...)
	}
	timedOut := func() int {
		return int(testutil.ToFloat64(m.expired.WithLabelValues(state.Events.String(), string(schemas.StatusTimedOut))))
	}
	// Two hours later every open task is past its one-hour timeout.
	apply(evStart("late-0", 7200))
	first := timedOut()
	if first == 0 || first >= open {
		t.Fatalf("the late record expired %d tasks, want some but fewer than %d", first, open)
	}
	if got := s.OpenTasksOf(evUnit); got != int64(open-first+1) {
		t.Fatalf("open tasks %d, want %d", got, open-first+1)
	}
	for i := 1; timedOut() < open; i++ {
		if i > 20 {
			t.Fatalf("after %d more records %d of %d expired", i, timedOut(), open)
		}
		apply(evStart(fmt.Sprintf("late-%d", i), 7200+float64(i)))
	}
	if got := timedOut(); got != open {
		t.Fatalf("timed out %d, want exactly %d", got, open)
	}
	off, _, err := s.LastOffset(evUnit)
	must(err)
	if off != offset-1 || c.applied != offset-1 {
		t.Fatalf("state offset %d, applied %d, want %d", off, c.applied, offset-1)
	}
}
