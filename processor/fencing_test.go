package processor

import (
	"context"
	"errors"
	"fmt"
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

// owner is one instance's hold on one unit: its own store and changelog
// client, as if in its own process.
type owner struct {
	t     *testing.T
	store *state.Store
	log   *Changelog
	c     *partitionConsumer
	m     *metrics
	next  *int64 // input offset shared by all owners: the input topic
}

func newOwner(t *testing.T, cfg Config, generation int64, next *int64) *owner {
	t.Helper()
	log := newChangelog(cfg)
	s, err := state.Open(state.Options{Dir: t.TempDir(), NoSync: true, Changelog: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	m, err := newMetrics(prometheus.NewRegistry(), s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &Processor{cfg: cfg, store: s, m: m, changelog: log, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	c := &partitionConsumer{p: p, unit: evUnit, topic: cfg.EventsTopic, generation: generation, applied: -1}
	o := &owner{t: t, store: s, log: log, c: c, m: m, next: next}
	o.take(generation)
	return o
}

// take fences and prepares the unit as a new assignment does.
func (o *owner) take(generation int64) {
	o.t.Helper()
	o.c.generation = generation
	if err := o.c.prepareState(context.Background()); err != nil {
		o.t.Fatalf("prepare state: %v", err)
	}
	if err := o.store.Own(evUnit); err != nil {
		o.t.Fatal(err)
	}
	o.c.join = &joiner{rules: newRules(o.c.p.cfg), clock: &clock{}, wall: testclock.Now}
}

// apply applies records as one batch and then checks the log for another
// writer's records, as the partition loop does.
func (o *owner) apply(recs ...schemas.Record) error {
	o.t.Helper()
	var batch []decoded
	for _, r := range recs {
		batch = append(batch, decoded{msg: kafka.Message{Offset: *o.next}, rec: r})
		*o.next++
	}
	if err := o.c.applyValid(context.Background(), batch); err != nil {
		o.t.Fatalf("apply: %v", err)
	}
	return o.c.repairForeign(context.Background())
}

// view is what users see of the unit: every event and the counters.
func (o *owner) view() string {
	o.t.Helper()
	page, err := o.store.Events(context.Background(), state.EventQuery{Limit: schemas.MaxLimit})
	if err != nil {
		o.t.Fatal(err)
	}
	out := ""
	for _, m := range page.Items {
		out += fmt.Sprintf("%s:%s ", m.TaskID, m.Status)
	}
	aggs, err := o.store.Aggregates()
	if err != nil {
		o.t.Fatal(err)
	}
	for _, a := range aggs {
		for _, s := range a.Events {
			out += fmt.Sprintf("[%s %s %d]", s.EventName, s.Status, s.Count)
		}
	}
	return out
}

// TestStaleOwnerCannotChangeTheLog: an instance that lost its partition
// but appends to its changelog afterwards (a zombie: paused past its
// session) changes nobody's state: the new owner's restore and every later
// one skip its records, the zombie learns it is fenced, and the new owner
// supersedes the records so that compaction cannot keep them either.
func TestStaleOwnerCannotChangeTheLog(t *testing.T) {
	b := testbroker.Start(t)
	cfg := Config{Brokers: b.Addrs, GroupID: testbroker.Name(t, "group"), EventsTopic: testbroker.Name(t, "events"),
		NetworkTopic: testbroker.Name(t, "network"), DeadLetterTopic: testbroker.Name(t, "dead"), Partitions: 1, CreateTopics: true,
		TaskTimeout: time.Hour, OrphanGrace: 10 * time.Minute}.WithDefaults()
	ctx := context.Background()
	if err := setupWithRetry(ctx, slog.New(slog.DiscardHandler), "topics", func(ctx context.Context) error { return ensureTopics(ctx, cfg) }); err != nil {
		t.Fatal(err)
	}
	if err := setupWithRetry(ctx, slog.New(slog.DiscardHandler), "changelog", newChangelog(cfg).ensure); err != nil {
		t.Fatal(err)
	}
	var next int64
	a := newOwner(t, cfg, 3, &next)
	if err := a.apply(evStart("task-1", 1), evStart("task-2", 2), evStart("task-3", 3), evEnd("task-1", 4, "")); err != nil {
		t.Fatal(err)
	}
	bOwner := newOwner(t, cfg, 4, &next)
	if got, want := bOwner.view(), a.view(); got != want {
		t.Fatalf("new owner restored %q, want the old owner's %q", got, want)
	}
	// The zombie finishes task-2 after the new owner's fence.
	if err := a.apply(evEnd("task-2", 5, "boom")); !errors.Is(err, ErrFenced) {
		t.Fatalf("zombie's append: %v, want ErrFenced", err)
	}
	if _, ok, _ := a.store.Mark(evUnit); ok {
		t.Fatal("the zombie kept its mark: its next assignment would trust state the log does not have")
	}
	// A restore now (before the owner's next append) skips the zombie.
	early := newOwner(t, cfg, 5, &next)
	want := "task-1:completed task-2:pending task-3:pending [ingest completed 1]"
	if got := early.view(); got != want {
		t.Fatalf("restore after the zombie's append: %q, want %q", got, want)
	}
	if got := testutil.ToFloat64(early.m.foreign.WithLabelValues(cfg.EventsTopic)); got == 0 {
		t.Error("the restore counted no skipped records of the stale owner")
	}
	// That restore fenced the second owner too; the third goes on, and its
	// append finds the records and supersedes them.
	if err := bOwner.apply(evEnd("task-3", 6, "")); !errors.Is(err, ErrFenced) {
		t.Fatalf("second owner after a third one's fence: %v, want ErrFenced", err)
	}
	if err := early.apply(evEnd("task-3", 6, "")); err != nil {
		t.Fatalf("owner's append after stale records: %v", err)
	}
	want = "task-1:completed task-3:completed task-2:pending [ingest completed 2]"
	if got := early.view(); got != want {
		t.Fatalf("owner's state %q, want %q", got, want)
	}
	// Every later restore, the zombie's own included, ends with the owner's
	// state.
	a.store.Disown(evUnit)
	a.take(7)
	if got := a.view(); got != want {
		t.Fatalf("the old zombie restored %q, want %q", got, want)
	}
	last := newOwner(t, cfg, 8, &next)
	if got := last.view(); got != want {
		t.Fatalf("a fresh restore %q, want %q", got, want)
	}
}
