package processor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/internal/testclock"
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
