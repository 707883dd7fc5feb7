package processor

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
)

// t0 is the time origin of every test record; record times are given as
// seconds after it so that durations are exact in float64.
// t0 is an hour before the test clock, whole seconds, so record times read
// as offsets from it.
var t0 = testclock.Now().Add(-time.Hour).Truncate(time.Second)

func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

func ptr[T any](v T) *T { return &v }

func evStart(task string, sec float64) schemas.Record {
	return schemas.Record{Schema: schemas.EventSchema, Kind: schemas.KindStart, TaskID: task, Time: at(sec),
		EventName: "ingest", PipelineID: "pl-1", ProcessID: ptr[int64](42)}
}

func evEnd(task string, sec float64, errText string) schemas.Record {
	return schemas.Record{Schema: schemas.EventSchema, Kind: schemas.KindEnd, TaskID: task, Time: at(sec), Error: errText}
}

func evRetry(task string, sec float64) schemas.Record {
	return schemas.Record{Schema: schemas.EventSchema, Kind: schemas.KindRetry, TaskID: task, Time: at(sec)}
}

func netStart(task, op string, sec float64) schemas.Record {
	return schemas.Record{Schema: schemas.NetworkSchema, Kind: schemas.KindStart, TaskID: task, OpID: op, Time: at(sec),
		Host: "db.internal", Port: 5432, Operation: "query"}
}

func netEnd(task, op string, sec float64, errText string) schemas.Record {
	return schemas.Record{Schema: schemas.NetworkSchema, Kind: schemas.KindEnd, TaskID: task, OpID: op, Time: at(sec),
		BytesSent: 100, BytesReceived: 2000, Error: errText}
}

// finishedEv is the metric a task joined from evStart(startSec) and
// evEnd(endSec, errText) with retries distinct retry records must produce.
func finishedEv(task string, startSec, endSec float64, errText string, retries int) schemas.EventMetric {
	status := schemas.StatusCompleted
	if errText != "" {
		status = schemas.StatusFailed
	}
	return schemas.EventMetric{TaskID: task, EventName: "ingest", PipelineID: "pl-1", ProcessID: ptr[int64](42),
		StartTime: ptr(at(startSec)), EndTime: ptr(at(endSec)), DurationSeconds: ptr(endSec - startSec),
		Status: status, Error: errText, RetryCount: retries}
}

func finishedNet(task, op string, startSec, endSec float64, errText string) schemas.NetworkMetric {
	status := schemas.StatusCompleted
	if errText != "" {
		status = schemas.StatusFailed
	}
	return schemas.NetworkMetric{TaskID: task, OpID: op, Host: "db.internal", Port: 5432, Operation: "query",
		StartTime: ptr(at(startSec)), EndTime: ptr(at(endSec)), LatencySeconds: ptr(endSec - startSec),
		BytesSent: 100, BytesReceived: 2000, Status: status, Error: errText}
}

// newStore opens an in-memory store with one publisher "p" and owns units.
func newStore(t *testing.T, units ...state.Unit) *state.Store {
	t.Helper()
	s, err := state.Open(state.Options{Publishers: []string{"p"}, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, u := range units {
		if err := s.Own(u); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// apply joins recs into u in one Update, like a partition consumer's batch.
func apply(t *testing.T, s *state.Store, u state.Unit, recs ...schemas.Record) joinStats {
	t.Helper()
	var st joinStats
	// Deadlines far away: these cases are about the join, expiry has its own.
	cfg := Config{TaskTimeout: 1000 * time.Hour, OperationTimeout: 1000 * time.Hour, OrphanGrace: 1000 * time.Hour}.WithDefaults()
	j := &joiner{rules: newRules(cfg), clock: &clock{}, wall: testclock.Now}
	err := s.Update(context.Background(), u, func(b *state.Batch) error {
		st = joinStats{}
		for _, r := range recs {
			if err := j.apply(b, r, &st); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("cannot apply batch: %v", err)
	}
	return st
}

// jsonEqual compares got and want by their JSON encoding, which covers every
// field including nil pointers (null).
func jsonEqual(t *testing.T, what string, got, want any) {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if string(g) != string(w) {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

var (
	evUnit  = state.Unit{Stream: state.Events, Partition: 0}
	netUnit = state.Unit{Stream: state.Network, Partition: 0}
)

// evStep is one Update batch and the state expected after it.
type evStep struct {
	batch  []schemas.Record
	stats  joinStats
	metric *schemas.EventMetric // store.Event("t"); nil means not found
	open   int64
	outbox int
}

func TestApplyEvent(t *testing.T) {
	// pendingEnd is the view of a task that has only its end.
	pendingEnd := func(endSec float64, errText string, retries int) *schemas.EventMetric {
		return &schemas.EventMetric{TaskID: "t", EndTime: ptr(at(endSec)), Status: schemas.StatusPending, Error: errText, RetryCount: retries}
	}
	pendingStart := func(startSec float64, retries int) *schemas.EventMetric {
		return &schemas.EventMetric{TaskID: "t", EventName: "ingest", PipelineID: "pl-1", ProcessID: ptr[int64](42),
			StartTime: ptr(at(startSec)), Status: schemas.StatusPending, RetryCount: retries}
	}
	done := func(startSec, endSec float64, errText string, retries int) *schemas.EventMetric {
		m := finishedEv("t", startSec, endSec, errText, retries)
		return &m
	}
	longErr := strings.Repeat("stack frame\n", 200)
	var hundredRetries []schemas.Record
	for i := range 100 {
		hundredRetries = append(hundredRetries, evRetry("t", float64(i)))
	}
	noRetries := schemas.RetrySummary{EventsByRetryCount: map[string]int64{"0": 1}}
	none := schemas.RetrySummary{EventsByRetryCount: map[string]int64{}}

	tests := []struct {
		name    string
		steps   []evStep
		retries schemas.RetrySummary
	}{
		{
			name: "start then end completes",
			steps: []evStep{
				{batch: []schemas.Record{evStart("t", 0)}, stats: joinStats{applied: 1}, metric: pendingStart(0, 0), open: 1},
				{batch: []schemas.Record{evEnd("t", 1.5, "")}, stats: joinStats{applied: 1, finished: 1}, metric: done(0, 1.5, "", 0), outbox: 1},
			},
			retries: noRetries,
		},
		{
			name: "start then end with error fails",
			steps: []evStep{
				{batch: []schemas.Record{evStart("t", 0)}, stats: joinStats{applied: 1}, metric: pendingStart(0, 0), open: 1},
				{batch: []schemas.Record{evEnd("t", 2, "disk full")}, stats: joinStats{applied: 1, finished: 1}, metric: done(0, 2, "disk full", 0), outbox: 1},
			},
			retries: noRetries,
		},
		{
			name: "start and end in one batch",
			steps: []evStep{
				{batch: []schemas.Record{evStart("t", 0), evEnd("t", 1.5, "")}, stats: joinStats{applied: 2, finished: 1}, metric: done(0, 1.5, "", 0), outbox: 1},
			},
			retries: noRetries,
		},
		{
			name: "end before start is pending with only its end, then finishes",
			steps: []evStep{
				{batch: []schemas.Record{evEnd("t", 2, "")}, stats: joinStats{applied: 1}, metric: pendingEnd(2, "", 0), open: 1},
				{batch: []schemas.Record{evStart("t", 0)}, stats: joinStats{applied: 1, finished: 1}, metric: done(0, 2, "", 0), outbox: 1},
			},
			retries: noRetries,
		},
		{
			name: "failed end before start keeps its error",
			steps: []evStep{
				{batch: []schemas.Record{evEnd("t", 2, "timeout")}, stats: joinStats{applied: 1}, metric: pendingEnd(2, "timeout", 0), open: 1},
				{batch: []schemas.Record{evStart("t", 0)}, stats: joinStats{applied: 1, finished: 1}, metric: done(0, 2, "timeout", 0), outbox: 1},
			},
			retries: noRetries,
		},
		{
			name: "repeated start while pending is a duplicate and changes nothing",
			steps: []evStep{
				{batch: []schemas.Record{evStart("t", 0)}, stats: joinStats{applied: 1}, metric: pendingStart(0, 0), open: 1},
				{batch: []schemas.Record{evStart("t", 0)}, stats: joinStats{duplicates: 1}, metric: pendingStart(0, 0), open: 1},
				// A second start with other data is still the same task's start.
				{batch: []schemas.Record{func() schemas.Record { r := evStart("t", 0.5); r.EventName = "other"; return r }()},
					stats: joinStats{duplicates: 1}, metric: pendingStart(0, 0), open: 1},
				{batch: []schemas.Record{evEnd("t", 1, "")}, stats: joinStats{applied: 1, finished: 1}, metric: done(0, 1, "", 0), outbox: 1},
			},
			retries: noRetries,
		},
		{
			name: "repeated end while pending is a duplicate and changes nothing",
			steps: []evStep{
				{batch: []schemas.Record{evEnd("t", 2, "")}, stats: joinStats{applied: 1}, metric: pendingEnd(2, "", 0), open: 1},
				{batch: []schemas.Record{evEnd("t", 3, "second end")}, stats: joinStats{duplicates: 1}, metric: pendingEnd(2, "", 0), open: 1},
				{batch: []schemas.Record{evStart("t", 0)}, stats: joinStats{applied: 1, finished: 1}, metric: done(0, 2, "", 0), outbox: 1},
			},
			retries: noRetries,
		},
		{
			name: "repeated retry with the same time counts once; distinct times count each",
			steps: []evStep{
				{batch: []schemas.Record{evStart("t", 0), evRetry("t", 1)}, stats: joinStats{applied: 2}, metric: pendingStart(0, 1), open: 1},
				{batch: []schemas.Record{evRetry("t", 1)}, stats: joinStats{duplicates: 1}, metric: pendingStart(0, 1), open: 1},
				{batch: []schemas.Record{evRetry("t", 1.25), evRetry("t", 1.25), evRetry("t", 1.5)}, stats: joinStats{applied: 2, duplicates: 1}, metric: pendingStart(0, 3), open: 1},
				{batch: []schemas.Record{evEnd("t", 2, "")}, stats: joinStats{applied: 1, finished: 1}, metric: done(0, 2, "", 3), outbox: 1},
			},
			retries: schemas.RetrySummary{TotalRetries: 3, EventsWithRetries: 1, MaxRetries: 3, EventsByRetryCount: map[string]int64{"3": 1}},
		},
		{
			name: "retries before start are kept",
			steps: []evStep{
				{batch: []schemas.Record{evRetry("t", 1)}, stats: joinStats{applied: 1},
					metric: &schemas.EventMetric{TaskID: "t", Status: schemas.StatusPending, RetryCount: 1}, open: 1},
				{batch: []schemas.Record{evEnd("t", 2, "")}, stats: joinStats{applied: 1}, metric: pendingEnd(2, "", 1), open: 1},
				{batch: []schemas.Record{evStart("t", 0)}, stats: joinStats{applied: 1, finished: 1}, metric: done(0, 2, "", 1), outbox: 1},
			},
			retries: schemas.RetrySummary{TotalRetries: 1, EventsWithRetries: 1, MaxRetries: 1, EventsByRetryCount: map[string]int64{"1": 1}},
		},
		{
			name: "retry after finish is late and not applied",
			steps: []evStep{
				{batch: []schemas.Record{evStart("t", 0), evEnd("t", 1, "")}, stats: joinStats{applied: 2, finished: 1}, metric: done(0, 1, "", 0), outbox: 1},
				{batch: []schemas.Record{evRetry("t", 5)}, stats: joinStats{late: 1}, metric: done(0, 1, "", 0), outbox: 1},
			},
			retries: noRetries,
		},
		{
			name: "start or end after finish is a duplicate; the metric is queued once",
			steps: []evStep{
				{batch: []schemas.Record{evStart("t", 0), evEnd("t", 1, "")}, stats: joinStats{applied: 2, finished: 1}, metric: done(0, 1, "", 0), outbox: 1},
				{batch: []schemas.Record{evEnd("t", 1, "")}, stats: joinStats{duplicates: 1}, metric: done(0, 1, "", 0), outbox: 1},
				{batch: []schemas.Record{evEnd("t", 9, "other"), evStart("t", 0)}, stats: joinStats{duplicates: 2}, metric: done(0, 1, "", 0), outbox: 1},
			},
			retries: noRetries,
		},
		{
			name: "duplicate end in the finishing batch",
			steps: []evStep{
				{batch: []schemas.Record{evStart("t", 0), evEnd("t", 1, ""), evEnd("t", 1, ""), evRetry("t", 3)}, stats: joinStats{applied: 2, finished: 1, duplicates: 1, late: 1}, metric: done(0, 1, "", 0), outbox: 1},
			},
			retries: noRetries,
		},
		{
			// Producers' clocks differ: an end stamped before its start is
			// joined as is. The negative duration is kept rather than clamped
			// so that the skew stays visible; slower_than never matches it.
			name: "end time before start time gives a negative duration",
			steps: []evStep{
				{batch: []schemas.Record{evStart("t", 3)}, stats: joinStats{applied: 1}, metric: pendingStart(3, 0), open: 1},
				{batch: []schemas.Record{evEnd("t", 1, "")}, stats: joinStats{applied: 1, finished: 1}, metric: done(3, 1, "", 0), outbox: 1},
			},
			retries: noRetries,
		},
		{
			// Stored values over 1 KB: a long error and a hundred retry times.
			name: "long error and many retries",
			steps: []evStep{
				{batch: []schemas.Record{evEnd("t", 200, longErr)}, stats: joinStats{applied: 1}, metric: pendingEnd(200, longErr, 0), open: 1},
				{batch: hundredRetries, stats: joinStats{applied: 100}, metric: pendingEnd(200, longErr, 100), open: 1},
				{batch: []schemas.Record{evStart("t", 0)}, stats: joinStats{applied: 1, finished: 1}, metric: done(0, 200, longErr, 100), outbox: 1},
			},
			retries: schemas.RetrySummary{TotalRetries: 100, EventsWithRetries: 1, MaxRetries: 100, EventsByRetryCount: map[string]int64{"100": 1}},
		},
		{
			name: "nothing for another task",
			steps: []evStep{
				{batch: []schemas.Record{evStart("u", 0)}, stats: joinStats{applied: 1}, open: 1},
			},
			retries: none,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, evUnit)
			var finished *schemas.EventMetric
			for i, step := range tt.steps {
				st := apply(t, s, evUnit, step.batch...)
				if st != step.stats {
					t.Errorf("step %d: stats %+v, want %+v", i, st, step.stats)
				}
				m, found, err := s.Event("t")
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case step.metric == nil && found:
					t.Errorf("step %d: task found: %+v", i, m)
				case step.metric != nil && !found:
					t.Errorf("step %d: task not found", i)
				case found:
					jsonEqual(t, fmt.Sprintf("step %d: metric", i), m, step.metric)
				}
				if step.metric != nil && step.metric.Status != schemas.StatusPending {
					finished = step.metric
				}
				if n := s.OpenTasks(state.Events); n != step.open {
					t.Errorf("step %d: open tasks %d, want %d", i, n, step.open)
				}
				items, err := s.ReadOutbox("p", 100)
				if err != nil {
					t.Fatal(err)
				}
				if len(items) != step.outbox {
					t.Fatalf("step %d: %d outbox items, want %d", i, len(items), step.outbox)
				}
				if d := s.OutboxDepth("p"); d != int64(step.outbox) {
					t.Errorf("step %d: outbox depth %d, want %d", i, d, step.outbox)
				}
				for _, it := range items {
					if it.Event == nil || it.Network != nil {
						t.Fatalf("step %d: outbox item %+v, want an event", i, it)
					}
					jsonEqual(t, fmt.Sprintf("step %d: outbox item", i), it.Event, finished)
				}
			}
			rs, err := s.RetryStats()
			if err != nil {
				t.Fatal(err)
			}
			jsonEqual(t, "retry stats", rs, tt.retries)
		})
	}
}

func TestNegativeDurationIsKept(t *testing.T) {
	s := newStore(t, evUnit)
	apply(t, s, evUnit, evStart("t", 3), evEnd("t", 1, ""))
	m, _, err := s.Event("t")
	if err != nil {
		t.Fatal(err)
	}
	if m.DurationSeconds == nil || *m.DurationSeconds != -2 || m.Status != schemas.StatusCompleted {
		t.Fatalf("duration %v status %q, want -2 completed", m.DurationSeconds, m.Status)
	}
	page, err := s.Events(context.Background(), state.EventQuery{SlowerThan: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 0 {
		t.Fatalf("slower than 1ns: %d items, want 0", len(page.Items))
	}
}

// netStep is one Update batch on the network unit and the expected state of
// the named operations after it.
type netStep struct {
	batch   []schemas.Record
	stats   joinStats
	metrics map[string]*schemas.NetworkMetric // op id → store.NetworkOp("t", op); nil means not found
	open    int64
	outbox  []schemas.NetworkMetric
}

func TestApplyNetwork(t *testing.T) {
	pendingStart := func(op string, sec float64) *schemas.NetworkMetric {
		return &schemas.NetworkMetric{TaskID: "t", OpID: op, Host: "db.internal", Port: 5432, Operation: "query",
			StartTime: ptr(at(sec)), Status: schemas.StatusPending}
	}
	done := func(op string, startSec, endSec float64, errText string) *schemas.NetworkMetric {
		m := finishedNet("t", op, startSec, endSec, errText)
		return &m
	}
	tests := []struct {
		name  string
		steps []netStep
	}{
		{
			name: "start then end with the default op id",
			steps: []netStep{
				{batch: []schemas.Record{netStart("t", "", 0)}, stats: joinStats{applied: 1},
					metrics: map[string]*schemas.NetworkMetric{"": pendingStart("", 0)}, open: 1},
				{batch: []schemas.Record{netEnd("t", "", 0.25, "")}, stats: joinStats{applied: 1, finished: 1},
					metrics: map[string]*schemas.NetworkMetric{"": done("", 0, 0.25, ""), "a": nil},
					outbox:  []schemas.NetworkMetric{*done("", 0, 0.25, "")}},
			},
		},
		{
			name: "two ops of one task finish separately",
			steps: []netStep{
				{batch: []schemas.Record{netStart("t", "a", 0), netStart("t", "b", 0.5)}, stats: joinStats{applied: 2},
					metrics: map[string]*schemas.NetworkMetric{"a": pendingStart("a", 0), "b": pendingStart("b", 0.5), "": nil}, open: 2},
				{batch: []schemas.Record{netEnd("t", "a", 1, "")}, stats: joinStats{applied: 1, finished: 1},
					metrics: map[string]*schemas.NetworkMetric{"a": done("a", 0, 1, ""), "b": pendingStart("b", 0.5)}, open: 1,
					outbox: []schemas.NetworkMetric{*done("a", 0, 1, "")}},
				{batch: []schemas.Record{netEnd("t", "b", 2.5, "connection reset")}, stats: joinStats{applied: 1, finished: 1},
					metrics: map[string]*schemas.NetworkMetric{"a": done("a", 0, 1, ""), "b": done("b", 0.5, 2.5, "connection reset")},
					outbox:  []schemas.NetworkMetric{*done("a", 0, 1, ""), *done("b", 0.5, 2.5, "connection reset")}},
			},
		},
		{
			name: "end before start",
			steps: []netStep{
				{batch: []schemas.Record{netEnd("t", "a", 2, "")}, stats: joinStats{applied: 1},
					metrics: map[string]*schemas.NetworkMetric{"a": {TaskID: "t", OpID: "a", EndTime: ptr(at(2)),
						BytesSent: 100, BytesReceived: 2000, Status: schemas.StatusPending}}, open: 1},
				{batch: []schemas.Record{netStart("t", "a", 0.5)}, stats: joinStats{applied: 1, finished: 1},
					metrics: map[string]*schemas.NetworkMetric{"a": done("a", 0.5, 2, "")},
					outbox:  []schemas.NetworkMetric{*done("a", 0.5, 2, "")}},
			},
		},
		{
			name: "repeated start and end are duplicates, before and after finish",
			steps: []netStep{
				{batch: []schemas.Record{netStart("t", "a", 0), netStart("t", "a", 0.1)}, stats: joinStats{applied: 1, duplicates: 1},
					metrics: map[string]*schemas.NetworkMetric{"a": pendingStart("a", 0)}, open: 1},
				{batch: []schemas.Record{netEnd("t", "a", 1, "")}, stats: joinStats{applied: 1, finished: 1},
					metrics: map[string]*schemas.NetworkMetric{"a": done("a", 0, 1, "")},
					outbox:  []schemas.NetworkMetric{*done("a", 0, 1, "")}},
				{batch: []schemas.Record{netEnd("t", "a", 1, ""), netStart("t", "a", 0)}, stats: joinStats{duplicates: 2},
					metrics: map[string]*schemas.NetworkMetric{"a": done("a", 0, 1, "")},
					outbox:  []schemas.NetworkMetric{*done("a", 0, 1, "")}},
			},
		},
		{
			// The decoder accepts NUL in task_id and op_id; two different
			// (task, op) pairs must not share state.
			name: "task and op ids containing NUL stay apart",
			steps: []netStep{
				{batch: []schemas.Record{netStart("t\x00x", "", 0), netEnd("t", "x\x00", 1, "")}, stats: joinStats{applied: 2},
					metrics: map[string]*schemas.NetworkMetric{"x\x00": {TaskID: "t", OpID: "x\x00", EndTime: ptr(at(1)),
						BytesSent: 100, BytesReceived: 2000, Status: schemas.StatusPending}}, open: 2},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, netUnit)
			for i, step := range tt.steps {
				st := apply(t, s, netUnit, step.batch...)
				if st != step.stats {
					t.Errorf("step %d: stats %+v, want %+v", i, st, step.stats)
				}
				for op, want := range step.metrics {
					m, found, err := s.NetworkOp("t", op)
					if err != nil {
						t.Fatal(err)
					}
					switch {
					case want == nil && found:
						t.Errorf("step %d: op %q found: %+v", i, op, m)
					case want != nil && !found:
						t.Errorf("step %d: op %q not found", i, op)
					case found:
						jsonEqual(t, fmt.Sprintf("step %d: op %q", i, op), m, want)
					}
				}
				if n := s.OpenTasks(state.Network); n != step.open {
					t.Errorf("step %d: open operations %d, want %d", i, n, step.open)
				}
				items, err := s.ReadOutbox("p", 100)
				if err != nil {
					t.Fatal(err)
				}
				got := make([]schemas.NetworkMetric, 0, len(items))
				for _, it := range items {
					if it.Network == nil || it.Event != nil {
						t.Fatalf("step %d: outbox item %+v, want a network metric", i, it)
					}
					got = append(got, *it.Network)
				}
				want := step.outbox
				if want == nil {
					want = []schemas.NetworkMetric{}
				}
				jsonEqual(t, fmt.Sprintf("step %d: outbox", i), got, want)
			}
			if n := s.OpenTasks(state.Events); n != 0 {
				t.Errorf("open event tasks %d, want 0", n)
			}
		})
	}
}

// TestBatchingDoesNotMatter applies the same records one per batch, all in
// one batch, and in pairs, and expects identical state and statistics.
func TestBatchingDoesNotMatter(t *testing.T) {
	seqs := map[string][]schemas.Record{
		"start end":            {evStart("t", 0), evEnd("t", 1.5, "")},
		"end start":            {evEnd("t", 1.5, "boom"), evStart("t", 0)},
		"retries and repeats":  {evRetry("t", 1), evStart("t", 0), evRetry("t", 1), evStart("t", 0), evRetry("t", 2), evEnd("t", 3, ""), evEnd("t", 3, ""), evRetry("t", 4)},
		"two tasks interleave": {evStart("t", 0), evStart("u", 1), evEnd("u", 2, ""), evRetry("t", 2), evEnd("t", 4, "x")},
		"pending only":         {evEnd("t", 1, ""), evRetry("t", 0.5)},
	}
	type snapshot struct {
		Stats   [4]int // applied, duplicates, late, finished
		T, U    *schemas.EventMetric
		Open    int64
		Outbox  []schemas.EventMetric
		Retries schemas.RetrySummary
	}
	run := func(t *testing.T, recs []schemas.Record, per int) snapshot {
		t.Helper()
		s := newStore(t, evUnit)
		var snap snapshot
		for i := 0; i < len(recs); i += per {
			st := apply(t, s, evUnit, recs[i:min(i+per, len(recs))]...)
			snap.Stats[0] += st.applied
			snap.Stats[1] += st.duplicates
			snap.Stats[2] += st.late
			snap.Stats[3] += st.finished
		}
		for _, id := range []string{"t", "u"} {
			m, found, err := s.Event(id)
			if err != nil {
				t.Fatal(err)
			}
			if found {
				if id == "t" {
					snap.T = &m
				} else {
					snap.U = &m
				}
			}
		}
		snap.Open = s.OpenTasks(state.Events)
		items, err := s.ReadOutbox("p", 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			snap.Outbox = append(snap.Outbox, *it.Event)
		}
		if snap.Retries, err = s.RetryStats(); err != nil {
			t.Fatal(err)
		}
		return snap
	}
	for name, recs := range seqs {
		t.Run(name, func(t *testing.T) {
			one := run(t, recs, 1)
			jsonEqual(t, "all in one batch vs one per batch", run(t, recs, len(recs)), one)
			jsonEqual(t, "pairs vs one per batch", run(t, recs, 2), one)
			if one.Stats[0]+one.Stats[1]+one.Stats[2] != len(recs) {
				t.Errorf("stats %+v do not account for %d records", one.Stats, len(recs))
			}
		})
	}
}
