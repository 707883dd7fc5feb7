package processor

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
)

// newTestConsumer is the consumer of evUnit a partition goroutine would
// run, logging to log, without a broker.
func newTestConsumer(t *testing.T, s *state.Store, cfg Config, log io.Writer) *partitionConsumer {
	t.Helper()
	m, err := newMetrics(prometheus.NewRegistry(), s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &Processor{cfg: cfg, store: s, m: m, log: slog.New(slog.NewTextHandler(log, nil))}
	c := &partitionConsumer{p: p, unit: evUnit, topic: "events", applied: -1}
	c.join = &joiner{rules: newRules(cfg), clock: &clock{}, wall: cfg.wallClock(), retention: s.Retention()}
	return c
}

// TestRetentionCountsFromNewestRecord: a backfill of records a month old
// stays queryable while it is the newest the partition has; records a day
// newer than a metric sweep it; a metric that finishes already past the
// retention is counted and logged once, and the sweep removes it.
func TestRetentionCountsFromNewestRecord(t *testing.T) {
	s := newStore(t, evUnit)
	cfg := expiryConfig()
	cfg.Now = testclock.Now
	var logs bytes.Buffer
	c := newTestConsumer(t, s, cfg, &logs)
	m := c.p.m
	offset := int64(0)
	apply := func(recs ...schemas.Record) {
		t.Helper()
		var batch []decoded
		for _, r := range recs {
			batch = append(batch, decoded{msg: kafka.Message{Offset: offset}, rec: r})
			offset++
		}
		if err := c.applyValid(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	sweep := func(want int) {
		t.Helper()
		n, err := c.sweepRetention(context.Background())
		if err != nil || n != want {
			t.Fatalf("sweep removed %d (err %v), want %d", n, err, want)
		}
	}
	queryable := func(task string, want bool) {
		t.Helper()
		if _, found, err := s.Event(task); err != nil || found != want {
			t.Fatalf("event %q queryable %v (err %v), want %v", task, found, err, want)
		}
	}
	pastRetention := func(want float64) {
		t.Helper()
		if got := testutil.ToFloat64(m.pastRetention.WithLabelValues("events")); got != want {
			t.Fatalf("pipetel_finished_past_retention_total{stream=events} = %v, want %v", got, want)
		}
	}
	const day = 24 * 3600.0
	month := -30 * day

	// The backfill: two tasks of a month ago, an hour apart.
	apply(evStart("old-1", month), evEnd("old-1", month+1, ""), evStart("old-2", month+3600), evEnd("old-2", month+3601, ""))
	sweep(0)
	queryable("old-1", true)
	queryable("old-2", true)
	pastRetention(0)

	// A record 23.5 h newer than old-2, so 24.5 h newer than old-1, pushes
	// out old-1 only.
	apply(evStart("newer", month+3601+23.5*3600), evEnd("newer", month+3601+23.5*3600, ""))
	sweep(1)
	queryable("old-1", false)
	queryable("old-2", true)

	// Live traffic: old-2 and newer go too.
	apply(evStart("live", 0), evEnd("live", 1, ""))
	sweep(2)
	queryable("old-2", false)
	queryable("live", true)
	pastRetention(0)
	if strings.Contains(logs.String(), "older than the retention") {
		t.Fatalf("warned before any metric finished past the retention:\n%s", logs.String())
	}

	// Late records of a month ago: counted, published, warned about once,
	// and swept by the next pass.
	apply(evStart("late-1", month), evEnd("late-1", month+1, ""))
	apply(evStart("late-2", month), evEnd("late-2", month+2, "boom"))
	pastRetention(2)
	if n := strings.Count(logs.String(), "older than the retention"); n != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "count=1") || !strings.Contains(logs.String(), "partition=0") {
		t.Fatalf("warning does not name the partition and the count:\n%s", logs.String())
	}
	queryable("late-1", true)
	sweep(2)
	queryable("late-1", false)
	queryable("live", true)

	// The newest record time is state: a new owner starts from it.
	newest, err := s.NewestRecordTime(evUnit)
	if err != nil || newest != at(1).UnixNano() {
		t.Fatalf("persisted newest record time %v (err %v), want %v", time.Unix(0, newest).UTC(), err, at(1))
	}
}

// TestNewestRecordTimeIgnoresIdleAdvance: stream time follows the wall
// clock on an idle partition (to expire open tasks), the retention's
// reference does not, so an idle partition keeps its last day of metrics.
func TestNewestRecordTimeIgnoresIdleAdvance(t *testing.T) {
	s := newStore(t, evUnit)
	cfg := expiryConfig()
	cfg.IdleTimeAdvance = time.Second
	cfg.Now = testclock.Now
	c := newTestConsumer(t, s, cfg, io.Discard)
	if err := c.applyValid(context.Background(), []decoded{
		{msg: kafka.Message{Offset: 0}, rec: evStart("done", 0)},
		{msg: kafka.Message{Offset: 1}, rec: evEnd("done", 1, "")},
		{msg: kafka.Message{Offset: 2}, rec: evStart("open", 2)},
	}); err != nil {
		t.Fatal(err)
	}
	// Idle for two days: "open" times out, stream time moves two days on.
	c.lastRecord = time.Now().Add(-48 * time.Hour)
	if err := c.idleTick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := eventJSON(t, s, "open"); !strings.Contains(got, `"status":"timed_out"`) {
		t.Fatalf("idle partition did not expire its open task: %s", got)
	}
	if n, err := c.sweepRetention(context.Background()); err != nil || n != 0 {
		t.Fatalf("sweep after idle removed %d (err %v), want 0", n, err)
	}
	if _, found, _ := s.Event("done"); !found {
		t.Fatal(`"done" was swept by an idle partition's wall clock`)
	}
	if c.join.clock.newest != at(2).UnixNano() {
		t.Fatalf("newest record time %v, want %v", time.Unix(0, c.join.clock.newest).UTC(), at(2))
	}
}
