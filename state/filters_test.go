package state_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
)

// named is a finished event of an event name and a pipeline, started at
// startSec.
func named(task, name, pipeline string, startSec, endSec float64) schemas.EventMetric {
	m := evMetric(task, startSec, endSec, "", 0)
	m.EventName, m.PipelineID = name, pipeline
	return m
}

func TestEventFilters(t *testing.T) {
	s := open(t, state.Options{}, ev0, ev1)
	finish(t, s, ev0, named("a", "load", "p1", 0, 1), named("b", "load", "p2", 10, 12), named("c", "transform", "p1", 20, 21))
	finish(t, s, ev1, named("d", "load", "p1", 30, 34))
	update(t, s, ev0, func(b *state.Batch) error {
		if err := b.PutPendingEvent("open", state.PendingEvent{HasStart: true, EventName: "load", PipelineID: "p1", StartTime: at(40), FirstSeen: at(40)}, true); err != nil {
			return err
		}
		// An end without a start: no start time, so no time bound keeps it.
		return b.PutPendingEvent("end-only", state.PendingEvent{HasEnd: true, EndTime: at(5), FirstSeen: at(5)}, true)
	})
	f := func(q state.EventQuery, want ...string) {
		t.Helper()
		wantIDs(t, fmt.Sprintf("%+v", q), eventIDs(t, s, q), want...)
	}
	f(state.EventQuery{EventName: "load"}, "a", "b", "d", "open")
	f(state.EventQuery{EventName: "load", PipelineID: "p1"}, "a", "d", "open")
	f(state.EventQuery{PipelineID: "p2"}, "b")
	f(state.EventQuery{EventName: "nope"})
	// since is inclusive, until exclusive, both on the start time.
	f(state.EventQuery{Since: at(10)}, "b", "c", "d", "open")
	f(state.EventQuery{Until: at(20)}, "a", "b")
	f(state.EventQuery{Since: at(10), Until: at(30)}, "b", "c")
	f(state.EventQuery{Status: schemas.StatusPending}, "end-only", "open")
	f(state.EventQuery{Status: schemas.StatusPending, Until: at(41)}, "open")
	f(state.EventQuery{Status: schemas.StatusPending, Until: at(40)})
	f(state.EventQuery{SlowerThan: time.Second, EventName: "load"}, "b", "d")
	// Pages of one follow the filters too.
	f(state.EventQuery{EventName: "load", Limit: 1}, "a", "b", "d", "open")

	ns := open(t, state.Options{}, net0)
	finishNet(t, ns, net0, netMetric("n1", "x", 0, 1, ""), netMetric("n2", "", 10, 11, ""))
	wantIDs(t, "network since", netIDs(t, ns, state.NetworkQuery{Since: at(5)}), `"n2"/""`)
	wantIDs(t, "network until", netIDs(t, ns, state.NetworkQuery{Until: at(5)}), `"n1"/"x"`)
}

func TestTop(t *testing.T) {
	s := open(t, state.Options{}, ev0, ev1)
	// Durations 1..6 s over two partitions, d and e tied at 4 s.
	finish(t, s, ev0, named("a", "load", "p1", 0, 1), named("c", "load", "p1", 0, 3), named("e", "transform", "p1", 0, 4),
		named("f", "load", "p2", 0, 6))
	finish(t, s, ev1, named("b", "load", "p1", 0, 2), named("d", "load", "p1", 0, 4), named("g", "transform", "p1", 0, 5))
	failed := evMetric("h", 0, 0.5, "boom", 0)
	finish(t, s, ev1, failed)
	f := func(q state.EventQuery, want ...string) {
		t.Helper()
		page, err := s.Events(context.Background(), q)
		if err != nil {
			t.Fatalf("%+v: %v", q, err)
		}
		if page.Next != "" || page.Items == nil {
			t.Errorf("%+v: next %q, items %v; want one page, never null", q, page.Next, page.Items)
		}
		var ids []string
		for _, m := range page.Items {
			ids = append(ids, m.TaskID)
		}
		wantIDs(t, fmt.Sprintf("%+v", q), ids, want...)
	}
	f(state.EventQuery{Top: 3}, "f", "g", "d")
	// Ties by task id: d before e, in whichever partitions they are.
	f(state.EventQuery{Top: 4}, "f", "g", "d", "e")
	f(state.EventQuery{Top: 100}, "f", "g", "d", "e", "c", "b", "a", "h")
	f(state.EventQuery{Top: 2, EventName: "load"}, "f", "d")
	f(state.EventQuery{Top: 2, PipelineID: "p1", EventName: "transform"}, "g", "e")
	f(state.EventQuery{Top: 10, SlowerThan: 3 * time.Second}, "f", "g", "d", "e")
	f(state.EventQuery{Top: 10, Status: schemas.StatusFailed}, "h")
	f(state.EventQuery{Top: 10, EventName: "nope"})

	// The scan bound: the filters keep one of the 8 metrics, 3 may be
	// examined.
	bounded := open(t, state.Options{MaxScanKeys: 3}, ev0, ev1)
	finish(t, bounded, ev0, named("a", "load", "p1", 0, 1), named("c", "load", "p1", 0, 3), named("f", "load", "p2", 0, 6))
	finish(t, bounded, ev1, named("b", "load", "p1", 0, 2), named("g", "rare", "p1", 0, 0.5))
	_, err := bounded.Events(context.Background(), state.EventQuery{Top: 1, EventName: "rare"})
	want := "cannot answer top=1: the filters keep too few of the slowest metrics: 0 kept of the 3 examined, the most one query examines; narrow the filters or list them with a cursor"
	if !errors.Is(err, state.ErrTopScanBound) || err.Error() != want {
		t.Errorf("top past the scan bound: %v, want %q", err, want)
	}
	// Within the bound it answers: top=1 examines one entry per partition.
	if page, err := bounded.Events(context.Background(), state.EventQuery{Top: 1}); err != nil || len(page.Items) != 1 || page.Items[0].TaskID != "f" {
		t.Errorf("top=1 within the bound: %v, %v; want f", page.Items, err)
	}

	ns := open(t, state.Options{}, net0, net1)
	finishNet(t, ns, net0, netMetric("n1", "x", 0, 1, ""), netMetric("n1", "y", 0, 3, ""))
	finishNet(t, ns, net1, netMetric("n2", "", 0, 3, ""), netMetric("n3", "", 0, 2, "reset"))
	page, err := ns.NetworkOps(context.Background(), state.NetworkQuery{Top: 3})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range page.Items {
		ids = append(ids, m.TaskID+"/"+m.OpID)
	}
	wantIDs(t, "network top=3", ids, "n1/y", "n2/", "n3/")
}

func TestNetworkOpsOf(t *testing.T) {
	s := open(t, state.Options{}, net0, net1)
	finishNet(t, s, net0, netMetric("a", "q2", 0, 1, ""), netMetric("a", "q1", 0, 2, "reset"), netMetric("ab", "", 0, 1, ""),
		netMetric("a\x00b", "q1", 0, 1, ""))
	update(t, s, net0, func(b *state.Batch) error {
		return b.PutPendingNetwork("a", "", state.PendingNetwork{HasStart: true, StartTime: at(0), FirstSeen: at(0)}, true)
	})
	finishNet(t, s, net1, netMetric("b", "", 0, 1, ""))
	f := func(task string, limit int, want ...string) {
		t.Helper()
		var got []string
		cursor := ""
		for range 10 {
			page, err := s.NetworkOpsOf(context.Background(), task, limit, cursor)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range page.Items {
				got = append(got, fmt.Sprintf("%q/%q %s", m.TaskID, m.OpID, m.Status))
			}
			if cursor = page.Next; cursor == "" {
				break
			}
		}
		wantIDs(t, fmt.Sprintf("operations of %q by %d", task, limit), got, want...)
	}
	all := []string{`"a"/"q1" failed`, `"a"/"q2" completed`, `"a"/"" pending`}
	f("a", 0, all...)
	f("a", 1, all...)
	f("a\x00b", 0, `"a\x00b"/"q1" completed`)
	f("b", 0, `"b"/"" completed`)
	f("nope", 0)
	if _, err := s.NetworkOpsOf(context.Background(), "a", 0, "!!!"); !errors.Is(err, state.ErrBadCursor) {
		t.Errorf("bad cursor: %v, want ErrBadCursor", err)
	}
}

// TestOldestOpenStart: with the open-task cache off, the walk of Badger's
// deadline index and its bounds; with it on, the exact answer from memory
// (the bounds only limit the walk).
func TestOldestOpenStart(t *testing.T) {
	for _, cached := range []bool{false, true} {
		t.Run(fmt.Sprintf("cached=%v", cached), func(t *testing.T) { testOldestOpenStart(t, cached) })
	}
}

func testOldestOpenStart(t *testing.T, cached bool) {
	opts := state.Options{MaxCachedOpen: -1}
	if cached {
		opts.MaxCachedOpen = 0
	}
	s := open(t, opts, ev0, net0)
	walk := func(walked, exact time.Time) time.Time {
		if cached {
			return exact
		}
		return walked
	}
	// Deadlines as the processor sets them: a start plus its event name's
	// timeout (1 h, or 2 h for "backfill"), an orphan's first record plus
	// 10 minutes. The earliest deadline is not the oldest start.
	pend := func(start float64, name string, timeout time.Duration) state.PendingEvent {
		return state.PendingEvent{HasStart: true, EventName: name, StartTime: at(start), FirstSeen: at(start),
			Deadline: at(start).Add(timeout).UnixNano()}
	}
	update(t, s, ev0, func(b *state.Batch) error {
		for id, pe := range map[string]state.PendingEvent{
			"x": pend(100, "load", time.Hour),
			"y": pend(50, "backfill", 2*time.Hour),
			"w": pend(200, "load", time.Hour),
			"z": {HasEnd: true, EndTime: at(10), FirstSeen: at(10), Deadline: at(10).Add(10 * time.Minute).UnixNano()},
		} {
			if err := b.PutPendingEvent(id, pe, true); err != nil {
				return err
			}
		}
		return nil
	})
	f := func(u state.Unit, maxTimeout time.Duration, maxKeys int, want time.Time) {
		t.Helper()
		got, found, err := s.OldestOpenStart(u, maxTimeout, maxKeys)
		if err != nil || found != !want.IsZero() || !got.Equal(want) {
			t.Errorf("OldestOpenStart(%v, %v, %d) = %v, %v, %v; want %v", u, maxTimeout, maxKeys, got, found, err, want)
		}
	}
	// Deadline order: z (orphan, skipped), x, w, y.
	f(ev0, 2*time.Hour, 100, at(50))
	// A longest timeout given too short stops the walk before y.
	f(ev0, time.Hour, 100, walk(at(100), at(50)))
	// The walk's bound: z and x only.
	f(ev0, 2*time.Hour, 2, walk(at(100), at(50)))
	f(ev0, 2*time.Hour, 1, walk(time.Time{}, at(50)))
	f(net0, time.Hour, 100, time.Time{})
	update(t, s, net0, func(b *state.Batch) error {
		return b.PutPendingNetwork("n", "q", state.PendingNetwork{HasStart: true, StartTime: at(7), FirstSeen: at(7), Deadline: at(7).Add(time.Hour).UnixNano()}, true)
	})
	f(net0, time.Hour, 100, at(7))
	// Finished, the oldest is the next one.
	update(t, s, ev0, func(b *state.Batch) error { return b.DeletePendingEvent("y") })
	f(ev0, 2*time.Hour, 100, at(100))
}
