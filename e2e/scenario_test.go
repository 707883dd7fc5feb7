package e2e

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/telemetry"
)

// scenario is a deterministic pipeline run: task i of a scenario has a known
// duration, retry count, outcome and network operation, so a test can compute
// every expected figure independently of pipetel.
type scenario struct {
	prefix string
	base   time.Time
}

func (s scenario) taskID(i int) string          { return fmt.Sprintf("%s-%05d", s.prefix, i) }
func (s scenario) duration(i int) time.Duration { return time.Duration(i%50) * 100 * time.Millisecond }
func (s scenario) retries(i int) int            { return i % 4 }
func (s scenario) failed(i int) bool            { return i%10 == 3 }
func (s scenario) endFirst(i int) bool          { return i%25 == 7 }
func (s scenario) hasOp(i int) bool             { return i%2 == 0 }
func (s scenario) opFailed(i int) bool          { return i%14 == 0 }
func (s scenario) latency(i int) time.Duration  { return time.Duration(i%7) * 250 * time.Millisecond }
func (s scenario) eventName(i int) string       { return []string{"extract", "transform", "load"}[i%3] }
func (s scenario) start(i int) time.Time        { return s.base.Add(time.Duration(i) * time.Millisecond) }

// emit produces tasks [from, to) and flushes.
func (s scenario) emit(t *testing.T, p *telemetry.Producer, clock *fakeClock, from, to int) {
	t.Helper()
	ctx := context.Background()
	log, net := p.Logger(), p.Network()
	for i := from; i < to; i++ {
		id, start := s.taskID(i), s.start(i)
		end := start.Add(s.duration(i))
		var taskErr error
		if s.failed(i) {
			taskErr = errors.New("boom")
		}
		startEvent := func() {
			clock.set(start)
			must(t, log.StartEvent(ctx, s.eventName(i), id, telemetry.WithPipelineID("pl-1"), telemetry.WithProcessID(int64(i))))
		}
		endEvent := func() {
			clock.set(end)
			must(t, log.EndEvent(ctx, id, taskErr))
		}
		retries := func() {
			for r := 0; r < s.retries(i); r++ {
				clock.set(start.Add(time.Duration(r+1) * time.Microsecond))
				must(t, log.RecordRetry(ctx, id))
			}
		}
		// End before start: the end, then the retries, then the start.
		if s.endFirst(i) {
			endEvent()
			retries()
			startEvent()
		} else {
			startEvent()
			retries()
		}
		if s.hasOp(i) {
			clock.set(start)
			must(t, net.StartOperation(ctx, id, "db.internal", 5432, telemetry.WithOperation("db_query"), telemetry.WithOpID("q1")))
			var opErr error
			if s.opFailed(i) {
				opErr = errors.New("reset")
			}
			clock.set(start.Add(s.latency(i)))
			must(t, net.EndOperation(ctx, id, int64(i), int64(2*i), opErr, telemetry.WithOpID("q1")))
		}
		if !s.endFirst(i) {
			endEvent()
		}
	}
	fctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	must(t, p.Flush(fctx))
}

// expected is what pipetel must report for tasks [0, n) of a scenario.
type expected struct {
	tasks, completed, failed, ops, opsFailed int
	retries, withRetries, maxRetries         int
	byRetryCount                             map[string]int64
	slowerThan1500ms                         int
	opsSlowerThan1s                          int
}

func (s scenario) expect(n int) expected {
	e := expected{tasks: n, byRetryCount: map[string]int64{}}
	for i := range n {
		if s.failed(i) {
			e.failed++
		} else {
			e.completed++
		}
		r := s.retries(i)
		e.retries += r
		if r > 0 {
			e.withRetries++
		}
		e.maxRetries = max(e.maxRetries, r)
		e.byRetryCount[fmt.Sprint(r)]++
		if s.duration(i) > 1500*time.Millisecond {
			e.slowerThan1500ms++
		}
		if s.hasOp(i) {
			e.ops++
			if s.opFailed(i) {
				e.opsFailed++
			}
			if s.latency(i) > time.Second {
				e.opsSlowerThan1s++
			}
		}
	}
	return e
}

// checkEvent compares one event metric with the scenario.
func (s scenario) checkEvent(t *testing.T, i int, m schemas.EventMetric) {
	t.Helper()
	wantStatus := schemas.StatusCompleted
	wantErr := ""
	if s.failed(i) {
		wantStatus, wantErr = schemas.StatusFailed, "boom"
	}
	switch {
	case m.TaskID != s.taskID(i), m.EventName != s.eventName(i), m.PipelineID != "pl-1",
		m.ProcessID == nil || *m.ProcessID != int64(i),
		m.Status != wantStatus, m.Error != wantErr, m.RetryCount != s.retries(i),
		m.StartTime == nil || !m.StartTime.Equal(s.start(i)),
		m.EndTime == nil || !m.EndTime.Equal(s.start(i).Add(s.duration(i))),
		m.DurationSeconds == nil || *m.DurationSeconds != s.duration(i).Seconds():
		t.Errorf("task %d: got %s", i, describe(m))
	}
}

// byDay counts the events and the network operations of tasks [from, to)
// by the UTC day ("2006.01.02") of their start time, as Elasticsearch's
// daily indices hold them.
func (s scenario) byDay(from, to int) (events, ops map[string]int) {
	events, ops = map[string]int{}, map[string]int{}
	for i := from; i < to; i++ {
		day := s.start(i).UTC().Format("2006.01.02")
		events[day]++
		if s.hasOp(i) {
			ops[day]++
		}
	}
	return events, ops
}
