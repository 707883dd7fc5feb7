package state_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
)

var t0 = testclock.Now().Add(-time.Hour).Truncate(time.Second)

func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

func ptr[T any](v T) *T { return &v }

var (
	ev0  = state.Unit{Stream: state.Events, Partition: 0}
	ev1  = state.Unit{Stream: state.Events, Partition: 1}
	net0 = state.Unit{Stream: state.Network, Partition: 0}
	net1 = state.Unit{Stream: state.Network, Partition: 1}
)

func open(t *testing.T, opts state.Options, own ...state.Unit) *state.Store {
	t.Helper()
	opts.NoSync = true
	s, err := state.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, u := range own {
		if err := s.Own(u); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func update(t *testing.T, s *state.Store, u state.Unit, fn func(b *state.Batch) error) {
	t.Helper()
	if err := s.Update(context.Background(), u, fn); err != nil {
		t.Fatal(err)
	}
}

// evMetric is a finished event from startSec to endSec; failed when errText
// is set.
func evMetric(task string, startSec, endSec float64, errText string, retries int) schemas.EventMetric {
	status := schemas.StatusCompleted
	if errText != "" {
		status = schemas.StatusFailed
	}
	return schemas.EventMetric{TaskID: task, EventName: "ingest", PipelineID: "pl", ProcessID: ptr[int64](7),
		StartTime: ptr(at(startSec)), EndTime: ptr(at(endSec)), DurationSeconds: ptr(endSec - startSec),
		Status: status, Error: errText, RetryCount: retries}
}

func netMetric(task, op string, startSec, endSec float64, errText string) schemas.NetworkMetric {
	status := schemas.StatusCompleted
	if errText != "" {
		status = schemas.StatusFailed
	}
	return schemas.NetworkMetric{TaskID: task, OpID: op, Host: "h", Port: 80, Operation: "get",
		StartTime: ptr(at(startSec)), EndTime: ptr(at(endSec)), LatencySeconds: ptr(endSec - startSec),
		BytesSent: 1, BytesReceived: 2, Status: status, Error: errText}
}

func finish(t *testing.T, s *state.Store, u state.Unit, ms ...schemas.EventMetric) {
	t.Helper()
	update(t, s, u, func(b *state.Batch) error {
		for _, m := range ms {
			if err := b.FinishEvent(m); err != nil {
				return err
			}
		}
		return nil
	})
}

func finishNet(t *testing.T, s *state.Store, u state.Unit, ms ...schemas.NetworkMetric) {
	t.Helper()
	update(t, s, u, func(b *state.Batch) error {
		for _, m := range ms {
			if err := b.FinishNetwork(m); err != nil {
				return err
			}
		}
		return nil
	})
}

func pendStart(sec float64) state.PendingEvent {
	return state.PendingEvent{HasStart: true, EventName: "ingest", StartTime: at(sec), FirstSeen: at(sec)}
}

func putPending(t *testing.T, s *state.Store, u state.Unit, tasks ...string) {
	t.Helper()
	update(t, s, u, func(b *state.Batch) error {
		for _, task := range tasks {
			if err := b.PutPendingEvent(task, pendStart(0), true); err != nil {
				return err
			}
		}
		return nil
	})
}

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

// eventIDs lists every event id the query returns, following cursors.
func eventIDs(t *testing.T, s *state.Store, q state.EventQuery) []string {
	t.Helper()
	ids := []string{}
	for {
		page, err := s.Events(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Items {
			ids = append(ids, m.TaskID)
		}
		if page.Next == "" {
			return ids
		}
		q.Cursor = page.Next
	}
}

func netIDs(t *testing.T, s *state.Store, q state.NetworkQuery) []string {
	t.Helper()
	ids := []string{}
	for {
		page, err := s.NetworkOps(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Items {
			ids = append(ids, fmt.Sprintf("%q/%q", m.TaskID, m.OpID))
		}
		if page.Next == "" {
			return ids
		}
		q.Cursor = page.Next
	}
}

func wantIDs(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s: %q, want %q", what, got, want)
	}
}

func retryStats(t *testing.T, s *state.Store) string {
	t.Helper()
	rs, err := s.RetryStats()
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(rs)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLastOffset(t *testing.T) {
	s := open(t, state.Options{})
	u := state.Unit{Stream: state.Events, Partition: 3}
	f := func(u state.Unit, want int64, wantFound bool) {
		t.Helper()
		off, found, err := s.LastOffset(u)
		if err != nil || off != want || found != wantFound {
			t.Errorf("LastOffset(%v) = %d, %v, %v; want %d, %v, nil", u, off, found, err, want, wantFound)
		}
	}
	f(u, 0, false)
	update(t, s, u, func(b *state.Batch) error {
		if off, found, err := b.Offset(); off != 0 || found || err != nil {
			t.Errorf("Batch.Offset before any = %d, %v, %v", off, found, err)
		}
		return b.SetOffset(41)
	})
	f(u, 41, true)
	// The other stream and other partitions have their own offsets.
	f(state.Unit{Stream: state.Network, Partition: 3}, 0, false)
	f(state.Unit{Stream: state.Events, Partition: 4}, 0, false)
	update(t, s, u, func(b *state.Batch) error {
		if off, found, err := b.Offset(); off != 41 || !found || err != nil {
			t.Errorf("Batch.Offset = %d, %v, %v; want 41, true, nil", off, found, err)
		}
		if err := b.SetOffset(42); err != nil {
			return err
		}
		return b.SetOffset(45)
	})
	f(u, 45, true)
	update(t, s, u, func(b *state.Batch) error { return b.SetOffset(0) })
	f(u, 0, true)
}

func TestUpdateErrorWritesNothing(t *testing.T) {
	s := open(t, state.Options{Publishers: []string{"p"}}, ev0, net0)
	update(t, s, ev0, func(b *state.Batch) error {
		if err := b.SetOffset(10); err != nil {
			return err
		}
		return b.PutPendingEvent("kept", pendStart(0), true)
	})
	before := retryStats(t, s)

	errBoom := errors.New("boom")
	calls := 0
	err := s.Update(context.Background(), ev0, func(b *state.Batch) error {
		calls++
		if err := b.SetOffset(11); err != nil {
			return err
		}
		if err := b.PutPendingEvent("new", pendStart(1), true); err != nil {
			return err
		}
		if err := b.DeletePendingEvent("kept"); err != nil {
			return err
		}
		if err := b.FinishEvent(evMetric("done", 0, 1, "", 3)); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) || err.Error() != "cannot update state of events partition 0: boom" {
		t.Fatalf("Update = %v, want the wrapped fn error", err)
	}
	if calls != 1 {
		t.Errorf("fn called %d times, want 1", calls)
	}
	if off, _, _ := s.LastOffset(ev0); off != 10 {
		t.Errorf("offset %d after a failed update, want 10", off)
	}
	for task, want := range map[string]bool{"kept": true, "new": false, "done": false} {
		if _, found, err := s.Event(task); err != nil || found != want {
			t.Errorf("Event(%q) found %v, %v; want %v", task, found, err, want)
		}
	}
	if n := s.OpenTasks(state.Events); n != 1 {
		t.Errorf("open tasks %d, want 1", n)
	}
	if d := s.OutboxDepth("p"); d != 0 {
		t.Errorf("outbox depth %d, want 0", d)
	}
	if items, err := s.ReadOutbox("p", 10); err != nil || len(items) != 0 {
		t.Errorf("outbox holds %d items (%v), want 0", len(items), err)
	}
	if n, err := s.CountFinished(state.Events); err != nil || n != 0 {
		t.Errorf("CountFinished = %d, %v; want 0", n, err)
	}
	if got := retryStats(t, s); got != before {
		t.Errorf("retry stats %s, want %s", got, before)
	}
	wantIDs(t, "failed list", eventIDs(t, s, state.EventQuery{Status: schemas.StatusFailed}))
	wantIDs(t, "slower than list", eventIDs(t, s, state.EventQuery{SlowerThan: time.Nanosecond}))

	// A cancelled context stops Update before fn runs.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls = 0
	err = s.Update(ctx, ev0, func(b *state.Batch) error { calls++; return b.SetOffset(12) })
	if !errors.Is(err, context.Canceled) || calls != 0 {
		t.Errorf("Update with a cancelled context = %v after %d calls, want context.Canceled after 0", err, calls)
	}
	if off, _, _ := s.LastOffset(ev0); off != 10 {
		t.Errorf("offset %d after a cancelled update, want 10", off)
	}
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	opts := state.Options{Dir: dir, Publishers: []string{"a", "b"}}
	s, err := state.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Own(ev0); err != nil {
		t.Fatal(err)
	}
	done, fail := evMetric("done", 0, 1.5, "", 2), evMetric("fail", 0, 3, "boom", 0)
	op := netMetric("n", "op", 0, 2, "")
	pending := state.PendingEvent{HasStart: true, EventName: "ingest", PipelineID: "pl", ProcessID: ptr[int64](7),
		StartTime: at(4), Retries: []int64{at(5).UnixNano()}, FirstSeen: at(4)}
	update(t, s, ev0, func(b *state.Batch) error {
		if err := b.PutPendingEvent("pend", pending, true); err != nil {
			return err
		}
		if err := b.FinishEvent(done); err != nil {
			return err
		}
		if err := b.FinishEvent(fail); err != nil {
			return err
		}
		return b.SetOffset(99)
	})
	update(t, s, net0, func(b *state.Batch) error {
		if err := b.PutPendingNetwork("n", "open", state.PendingNetwork{HasStart: true, Host: "h", Port: 80, StartTime: at(1), FirstSeen: at(1)}, true); err != nil {
			return err
		}
		if err := b.FinishNetwork(op); err != nil {
			return err
		}
		return b.SetOffset(7)
	})
	items, err := s.ReadOutbox("a", 1)
	if err != nil || len(items) != 1 {
		t.Fatalf("ReadOutbox = %d items, %v", len(items), err)
	}
	if err := s.AckOutbox("a", items); err != nil {
		t.Fatal(err)
	}
	wantRetries := retryStats(t, s)
	if want := `{"total_retries":2,"events_with_retries":1,"max_retries":2,"events_by_retry_count":{"0":1,"2":1}}`; wantRetries != want {
		t.Fatalf("retry stats %s, want %s", wantRetries, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v, want nil", err)
	}

	s = open(t, opts, ev0, net0)
	for u, want := range map[state.Unit]int64{ev0: 99, net0: 7} {
		if off, found, err := s.LastOffset(u); off != want || !found || err != nil {
			t.Errorf("LastOffset(%v) = %d, %v, %v; want %d", u, off, found, err, want)
		}
	}
	m, found, err := s.Event("pend")
	if err != nil || !found {
		t.Fatalf("pending event: found %v, %v", found, err)
	}
	jsonEqual(t, "pending event", m, state.PendingEventMetric("pend", pending))
	if m.RetryCount != 1 || m.Status != schemas.StatusPending {
		t.Errorf("pending event %+v, want 1 retry and status pending", m)
	}
	for _, want := range []schemas.EventMetric{done, fail} {
		m, found, err := s.Event(want.TaskID)
		if err != nil || !found {
			t.Fatalf("Event(%q): found %v, %v", want.TaskID, found, err)
		}
		jsonEqual(t, want.TaskID, m, want)
	}
	nm, found, err := s.NetworkOp("n", "op")
	if err != nil || !found {
		t.Fatalf("network op: found %v, %v", found, err)
	}
	jsonEqual(t, "network op", nm, op)
	if got := retryStats(t, s); got != wantRetries {
		t.Errorf("retry stats after reopen %s, want %s", got, wantRetries)
	}
	if e, n := s.OpenTasks(state.Events), s.OpenTasks(state.Network); e != 1 || n != 1 {
		t.Errorf("open tasks %d events, %d network; want 1, 1", e, n)
	}
	if a, b, m := s.OutboxDepth("a"), s.OutboxDepth("b"), s.MaxOutboxDepth(); a != 2 || b != 3 || m != 3 {
		t.Errorf("outbox depths a=%d b=%d max=%d, want 2, 3, 3", a, b, m)
	}
	wantIDs(t, "failed", eventIDs(t, s, state.EventQuery{Status: schemas.StatusFailed}), "fail")
	wantIDs(t, "slower than 2s", eventIDs(t, s, state.EventQuery{SlowerThan: 2 * time.Second}), "fail")

	// Items queued after the reopen come after the old ones.
	finish(t, s, ev0, evMetric("later", 5, 6, "", 0))
	items, err = s.ReadOutbox("a", 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range items {
		switch {
		case it.Event != nil:
			got = append(got, it.Event.TaskID)
		case it.Network != nil:
			got = append(got, it.Network.TaskID+"/"+it.Network.OpID)
		}
	}
	wantIDs(t, "outbox a after reopen", got, "fail", "n/op", "later")
}

func TestExpireFinished(t *testing.T) {
	ctx := context.Background()
	s := open(t, state.Options{Publishers: []string{"p"}}, ev0, net0)
	// e<i> runs from 10i s for i%3+1 s (1, 2 or 3 s), fails when i is odd,
	// and had i%3 retries.
	var ms []schemas.EventMetric
	for i := range 10 {
		errText := ""
		if i%2 == 1 {
			errText = "boom"
		}
		start := float64(10 * i)
		ms = append(ms, evMetric(fmt.Sprintf("e%d", i), start, start+float64(i%3+1), errText, i%3))
	}
	finish(t, s, ev0, ms...)
	putPending(t, s, ev0, "old-pending")
	if got, want := retryStats(t, s), `{"total_retries":9,"events_with_retries":6,"max_retries":2,"events_by_retry_count":{"0":4,"1":3,"2":3}}`; got != want {
		t.Fatalf("retry stats before expiry %s, want %s", got, want)
	}

	// The cut is e4's end time: e0..e3 end before it; e4 ends at it and stays.
	cut := *ms[4].EndTime
	n, err := s.ExpireFinished(ctx, ev0, cut)
	if err != nil || n != 4 {
		t.Fatalf("ExpireFinished = %d, %v; want 4", n, err)
	}
	for i, m := range ms {
		_, found, err := s.Event(m.TaskID)
		if err != nil || found != (i >= 4) {
			t.Errorf("Event(%q) found %v (%v) after expiry", m.TaskID, found, err)
		}
	}
	wantIDs(t, "failed", eventIDs(t, s, state.EventQuery{Status: schemas.StatusFailed}), "e5", "e7", "e9")
	wantIDs(t, "completed", eventIDs(t, s, state.EventQuery{Status: schemas.StatusCompleted}), "e4", "e6", "e8")
	// Ordered by duration: e6 and e9 take 1 s, e4 and e7 2 s, e5 and e8 3 s.
	wantIDs(t, "slower than 1s", eventIDs(t, s, state.EventQuery{SlowerThan: time.Second}), "e4", "e7", "e5", "e8")
	wantIDs(t, "slower than 0.5s", eventIDs(t, s, state.EventQuery{SlowerThan: time.Second / 2}), "e6", "e9", "e4", "e7", "e5", "e8")
	// Removed: e0 (0 retries), e1 (1), e2 (2), e3 (0).
	if got, want := retryStats(t, s), `{"total_retries":6,"events_with_retries":4,"max_retries":2,"events_by_retry_count":{"0":2,"1":2,"2":2}}`; got != want {
		t.Errorf("retry stats after expiry %s, want %s", got, want)
	}
	if c, err := s.CountFinished(state.Events); c != 6 || err != nil {
		t.Errorf("CountFinished = %d, %v; want 6", c, err)
	}
	// Pending tasks and the outbox are not expiry's business.
	if _, found, _ := s.Event("old-pending"); !found || s.OpenTasks(state.Events) != 1 {
		t.Errorf("pending task removed by expiry")
	}
	if d := s.OutboxDepth("p"); d != 10 {
		t.Errorf("outbox depth %d, want 10", d)
	}
	if n, err := s.ExpireFinished(ctx, ev0, cut); n != 0 || err != nil {
		t.Errorf("second ExpireFinished = %d, %v; want 0", n, err)
	}
	// A cut after everything removes the rest, down to empty statistics.
	if n, err := s.ExpireFinished(ctx, ev0, at(1000)); n != 6 || err != nil {
		t.Errorf("ExpireFinished(all) = %d, %v; want 6", n, err)
	}
	if got, want := retryStats(t, s), `{"total_retries":0,"events_with_retries":0,"max_retries":0,"events_by_retry_count":{}}`; got != want {
		t.Errorf("retry stats after expiring all %s, want %s", got, want)
	}
	wantIDs(t, "slower than 1ns after expiring all", eventIDs(t, s, state.EventQuery{SlowerThan: 1}))
	wantIDs(t, "all after expiring all", eventIDs(t, s, state.EventQuery{}), "old-pending")

	// Network operations.
	finishNet(t, s, net0,
		netMetric("a", "", 0, 1, ""), netMetric("a", "x", 0, 2, "reset"),
		netMetric("b", "", 5, 9, "refused"), netMetric("c", "", 10, 12, ""))
	n, err = s.ExpireFinished(ctx, net0, at(9))
	if err != nil || n != 2 {
		t.Fatalf("ExpireFinished(network) = %d, %v; want 2", n, err)
	}
	wantIDs(t, "network", netIDs(t, s, state.NetworkQuery{}), `"b"/""`, `"c"/""`)
	wantIDs(t, "network failed", netIDs(t, s, state.NetworkQuery{Status: schemas.StatusFailed}), `"b"/""`)
	wantIDs(t, "network slower than 1s", netIDs(t, s, state.NetworkQuery{SlowerThan: time.Second}), `"c"/""`, `"b"/""`)
	if c, err := s.CountFinished(state.Network); c != 2 || err != nil {
		t.Errorf("CountFinished(network) = %d, %v; want 2", c, err)
	}
}

// TestExpireManyFinished expires more metrics than one retention
// transaction holds.
func TestExpireManyFinished(t *testing.T) {
	s := open(t, state.Options{}, ev0)
	const old = 1234
	for lo := 0; lo < old; lo += 400 {
		var ms []schemas.EventMetric
		for i := lo; i < min(lo+400, old); i++ {
			ms = append(ms, evMetric(fmt.Sprintf("old-%04d", i), 0, 1+float64(i)/1000, "", i%2))
		}
		finish(t, s, ev0, ms...)
	}
	finish(t, s, ev0, evMetric("new-1", 100, 101, "", 1), evMetric("new-2", 100, 102, "x", 0))
	n, err := s.ExpireFinished(context.Background(), ev0, at(50))
	if err != nil || n != old {
		t.Fatalf("ExpireFinished = %d, %v; want %d", n, err, old)
	}
	wantIDs(t, "left", eventIDs(t, s, state.EventQuery{}), "new-1", "new-2")
	wantIDs(t, "slower than 0.5s", eventIDs(t, s, state.EventQuery{SlowerThan: time.Second / 2}), "new-1", "new-2")
	if got, want := retryStats(t, s), `{"total_retries":1,"events_with_retries":1,"max_retries":1,"events_by_retry_count":{"0":1,"1":1}}`; got != want {
		t.Errorf("retry stats %s, want %s", got, want)
	}
}

func TestOwnScoping(t *testing.T) {
	s := open(t, state.Options{})
	// Written before any unit is owned, like a partition's previous
	// owner left it on disk.
	finish(t, s, ev0, evMetric("a0", 0, 2, "boom", 1))
	finish(t, s, ev1, evMetric("a1", 0, 2, "boom", 3))
	putPending(t, s, ev0, "p0")
	putPending(t, s, ev1, "p1", "q1")
	finishNet(t, s, net1, netMetric("n1", "", 0, 2, ""))

	check := func(events []string, open int64, retries string) {
		t.Helper()
		wantIDs(t, "events", eventIDs(t, s, state.EventQuery{}), events...)
		for _, id := range []string{"a0", "a1", "p0", "p1", "q1"} {
			_, found, err := s.Event(id)
			if err != nil || found != slices.Contains(events, id) {
				t.Errorf("Event(%q) found %v, %v", id, found, err)
			}
		}
		var failed []string
		for _, id := range events {
			if id[0] == 'a' {
				failed = append(failed, id)
			}
		}
		wantIDs(t, "failed", eventIDs(t, s, state.EventQuery{Status: schemas.StatusFailed}), failed...)
		wantIDs(t, "slower than 1s", eventIDs(t, s, state.EventQuery{SlowerThan: time.Second}), failed...)
		if n := s.OpenTasks(state.Events); n != open {
			t.Errorf("open tasks %d, want %d", n, open)
		}
		if got := retryStats(t, s); got != retries {
			t.Errorf("retry stats %s, want %s", got, retries)
		}
		if n, err := s.CountFinished(state.Events); err != nil || n != int64(len(failed)) {
			t.Errorf("CountFinished = %d, %v; want %d", n, err, len(failed))
		}
	}
	const noRetries = `{"total_retries":0,"events_with_retries":0,"max_retries":0,"events_by_retry_count":{}}`
	check(nil, 0, noRetries)

	if err := s.Own(ev0); err != nil {
		t.Fatal(err)
	}
	check([]string{"a0", "p0"}, 1, `{"total_retries":1,"events_with_retries":1,"max_retries":1,"events_by_retry_count":{"1":1}}`)
	if got := s.Owned(state.Events); !slices.Equal(got, []int32{0}) {
		t.Errorf("Owned(events) = %v, want [0]", got)
	}
	if got := s.Owned(state.Network); got != nil {
		t.Errorf("Owned(network) = %v, want none", got)
	}
	if _, found, _ := s.NetworkOp("n1", ""); found {
		t.Errorf("network op of an unowned unit found")
	}

	if err := s.Own(ev1); err != nil {
		t.Fatal(err)
	}
	check([]string{"a0", "a1", "p0", "p1", "q1"}, 3, `{"total_retries":4,"events_with_retries":2,"max_retries":3,"events_by_retry_count":{"1":1,"3":1}}`)
	if got := s.Owned(state.Events); !slices.Equal(got, []int32{0, 1}) {
		t.Errorf("Owned(events) = %v, want [0 1]", got)
	}

	s.Disown(ev0)
	check([]string{"a1", "p1", "q1"}, 2, `{"total_retries":3,"events_with_retries":1,"max_retries":3,"events_by_retry_count":{"3":1}}`)
	// Written while disowned: counted when the unit is owned again.
	putPending(t, s, ev0, "r0")
	if n := s.OpenTasks(state.Events); n != 2 {
		t.Errorf("open tasks %d after writing to a disowned unit, want 2", n)
	}
	if err := s.Own(ev0); err != nil {
		t.Fatal(err)
	}
	if n := s.OpenTasks(state.Events); n != 4 {
		t.Errorf("open tasks %d after owning again, want 4", n)
	}

	if err := s.Own(net1); err != nil {
		t.Fatal(err)
	}
	if _, found, err := s.NetworkOp("n1", ""); !found || err != nil {
		t.Errorf("NetworkOp after Own: found %v, %v", found, err)
	}
	if n := s.OpenTasks(state.Network); n != 0 {
		t.Errorf("open network operations %d, want 0", n)
	}
}

func TestOutbox(t *testing.T) {
	s := open(t, state.Options{Publishers: []string{"a", "b"}}, ev0, net0)
	select {
	case <-s.OutboxSignal("a"):
		t.Fatal("signal before anything was queued")
	default:
	}
	putPending(t, s, ev0, "x")
	select {
	case <-s.OutboxSignal("a"):
		t.Fatal("signal after an update that queued nothing")
	default:
	}

	before := time.Now()
	for i := range 5 {
		finish(t, s, ev0, evMetric(fmt.Sprintf("e%d", i), 0, 1, "", 0))
	}
	finishNet(t, s, net0, netMetric("n", "o", 0, 1, ""))
	after := time.Now()
	for _, name := range []string{"a", "b"} {
		select {
		case <-s.OutboxSignal(name):
		default:
			t.Errorf("no signal for %q", name)
		}
	}
	depths := func(a, b, max int64) {
		t.Helper()
		if da, db, m := s.OutboxDepth("a"), s.OutboxDepth("b"), s.MaxOutboxDepth(); da != a || db != b || m != max {
			t.Errorf("depths a=%d b=%d max=%d, want %d %d %d", da, db, m, a, b, max)
		}
	}
	depths(6, 6, 6)

	read := func(pub string, n int) ([]state.OutboxItem, []string) {
		t.Helper()
		items, err := s.ReadOutbox(pub, n)
		if err != nil {
			t.Fatal(err)
		}
		ids := []string{}
		for _, it := range items {
			if (it.Event == nil) == (it.Network == nil) {
				t.Fatalf("item %+v holds not exactly one metric", it)
			}
			if it.Enqueued.Before(before) || it.Enqueued.After(after) {
				t.Errorf("item enqueued at %v, outside [%v, %v]", it.Enqueued, before, after)
			}
			if it.Event != nil {
				ids = append(ids, it.Event.TaskID)
			} else {
				ids = append(ids, it.Network.TaskID+"/"+it.Network.OpID)
			}
		}
		return items, ids
	}
	items, ids := read("a", 2)
	wantIDs(t, "first two of a", ids, "e0", "e1")
	if err := s.AckOutbox("a", items); err != nil {
		t.Fatal(err)
	}
	depths(4, 6, 6)
	items, ids = read("a", 100)
	wantIDs(t, "rest of a", ids, "e2", "e3", "e4", "n/o")
	_, ids = read("b", 100)
	wantIDs(t, "b", ids, "e0", "e1", "e2", "e3", "e4", "n/o")
	if err := s.AckOutbox("a", items); err != nil {
		t.Fatal(err)
	}
	depths(0, 6, 6)
	_, ids = read("a", 100)
	wantIDs(t, "a after acking all", ids)
	items, _ = read("b", 5)
	if err := s.AckOutbox("b", items); err != nil {
		t.Fatal(err)
	}
	depths(0, 1, 1)
	_, ids = read("b", 100)
	wantIDs(t, "b after acking 5", ids, "n/o")
	_, ids = read("nobody", 100)
	wantIDs(t, "unknown publisher", ids)

	// Without publishers nothing is queued.
	bare := open(t, state.Options{}, ev0)
	finish(t, bare, ev0, evMetric("e", 0, 1, "", 0))
	if m := bare.MaxOutboxDepth(); m != 0 {
		t.Errorf("MaxOutboxDepth without publishers = %d, want 0", m)
	}
}

func TestCursor(t *testing.T) {
	s := open(t, state.Options{}, ev0, ev1, net0)
	finish(t, s, ev0, evMetric("a", 0, 1, "", 0), evMetric("c", 0, 1, "", 0))
	finish(t, s, ev1, evMetric("b", 0, 1, "", 0))
	putPending(t, s, ev0, "d")

	for _, cursor := range []string{"!!!", "AAAA", "a b", "=="} {
		_, err := s.Events(context.Background(), state.EventQuery{Cursor: cursor})
		want := fmt.Sprintf("cannot continue from cursor %q: invalid cursor", cursor)
		if !errors.Is(err, state.ErrBadCursor) || err.Error() != want {
			t.Errorf("Events(cursor %q) = %v, want %q", cursor, err, want)
		}
		_, err = s.NetworkOps(context.Background(), state.NetworkQuery{Cursor: cursor})
		if !errors.Is(err, state.ErrBadCursor) {
			t.Errorf("NetworkOps(cursor %q) = %v, want ErrBadCursor", cursor, err)
		}
	}

	// Pages of one: partition 0's finished, partition 1's, then pending.
	var got []string
	q := state.EventQuery{Limit: 1}
	for range 10 {
		page, err := s.Events(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != 1 {
			t.Fatalf("page of %d items, want 1", len(page.Items))
		}
		got = append(got, page.Items[0].TaskID)
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	wantIDs(t, "pages of one", got, "a", "c", "b", "d")

	// A well-formed cursor past every key gives an empty last page.
	page, err := s.Events(context.Background(), state.EventQuery{Cursor: base64.RawURLEncoding.EncodeToString([]byte("\xff\xff\xff\xff\xff\xff\xff"))})
	if err != nil || len(page.Items) != 0 || page.Next != "" {
		t.Errorf("cursor past the end: %d items, next %q, %v", len(page.Items), page.Next, err)
	}
	// Limits: 0 means DefaultLimit, above MaxLimit is MaxLimit.
	for _, limit := range []int{0, -1, schemas.MaxLimit + 1} {
		if page, err := s.Events(context.Background(), state.EventQuery{Limit: limit}); err != nil || len(page.Items) != 4 || page.Next != "" {
			t.Errorf("limit %d: %d items, next %q, %v", limit, len(page.Items), page.Next, err)
		}
	}
}

// TestNetworkIDsWithNUL checks that ids containing NUL, which the decoder
// accepts, keep (task, op) pairs apart and are listed back intact.
func TestNetworkIDsWithNUL(t *testing.T) {
	s := open(t, state.Options{}, net0)
	update(t, s, net0, func(b *state.Batch) error {
		for _, id := range [][2]string{{"a\x00b", ""}, {"a", "b\x00"}, {"a", ""}, {"a\x00", "\x00"}, {"\x00", ""}} {
			if err := b.PutPendingNetwork(id[0], id[1], state.PendingNetwork{HasStart: true, Host: id[0] + "|" + id[1]}, true); err != nil {
				return err
			}
		}
		return nil
	})
	if n := s.OpenTasks(state.Network); n != 5 {
		t.Errorf("open operations %d, want 5", n)
	}
	page, err := s.NetworkOps(context.Background(), state.NetworkQuery{Status: schemas.StatusPending})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range page.Items {
		if m.Host != m.TaskID+"|"+m.OpID {
			t.Errorf("op %q/%q holds the state of %q", m.TaskID, m.OpID, m.Host)
		}
		got = append(got, fmt.Sprintf("%q/%q", m.TaskID, m.OpID))
	}
	slices.Sort(got)
	wantIDs(t, "pending", got, `"\x00"/""`, `"a"/""`, `"a"/"b\x00"`, `"a\x00"/"\x00"`, `"a\x00b"/""`)
	finishNet(t, s, net0, netMetric("a\x00b", "", 0, 1, ""))
	if _, found, _ := s.NetworkOp("a", "b\x00"); !found {
		t.Fatal("op a/b\\x00 lost")
	}
	m, found, err := s.NetworkOp("a\x00b", "")
	if err != nil || !found || m.Status != schemas.StatusCompleted {
		t.Errorf("NetworkOp(a\\x00b) = %+v, %v, %v; want the finished metric", m, found, err)
	}
}

// TestListScanIsBounded: a filter that keeps few keys ends its page after
// MaxScanKeys examined keys, with a cursor that continues exactly there, and
// a request whose context ended stops the scan with the context's error.
func TestListScanIsBounded(t *testing.T) {
	s := open(t, state.Options{MaxScanKeys: 50}, ev0)
	var ms []schemas.EventMetric
	var want []string
	for i := range 300 {
		m := evMetric(fmt.Sprintf("task-%03d", i), 0, 1, "", 0)
		if i%10 == 3 {
			m = evMetric(fmt.Sprintf("task-%03d", i), 0, 1, "boom", 0)
			m.Status = schemas.StatusTimedOut
			want = append(want, m.TaskID)
		} else if i%10 == 5 {
			m = evMetric(fmt.Sprintf("task-%03d", i), 0, 1, "boom", 0)
		}
		ms = append(ms, m)
	}
	finish(t, s, ev0, ms...)
	q := state.EventQuery{Status: schemas.StatusTimedOut, Limit: schemas.MaxLimit}
	pages := 0
	var got []string
	for {
		page, err := s.Events(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, m := range page.Items {
			got = append(got, m.TaskID)
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("timed out ids %v, want %v", got, want)
	}
	// 60 failed-index keys (30 timed out, 30 failed), 50 per page.
	if pages != 2 {
		t.Errorf("%d pages, want 2", pages)
	}
	if ids := eventIDs(t, s, state.EventQuery{Limit: 7}); len(ids) != 300 {
		t.Errorf("unfiltered list: %d ids, want 300", len(ids))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	big := open(t, state.Options{}, ev0)
	var many []schemas.EventMetric
	for i := range 10 {
		many = append(many, evMetric(fmt.Sprintf("t-%04d", i), 0, 1, "", 0))
	}
	finish(t, big, ev0, many...)
	if _, err := big.Events(ctx, state.EventQuery{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled scan: error %v, want context.Canceled", err)
	}
}
