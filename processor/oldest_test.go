package processor

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
)

// TestOldestOpenGauge: pipetel_oldest_open_seconds is the age by the wall
// clock of the oldest started open entry of each owned partition, found
// through the deadline index although an event name's longer timeout puts
// that entry's deadline last; the same whether the open-task cache holds
// every entry, spilled or is off; 0 with nothing open; gone once the
// partition is disowned.
func TestOldestOpenGauge(t *testing.T) {
	cfg := Config{Brokers: []string{"unused:1"}, TaskTimeout: time.Hour, OperationTimeout: time.Hour, OrphanGrace: 10 * time.Minute,
		TaskTimeouts: map[string]time.Duration{"backfill": 3 * time.Hour}}.WithDefaults()
	cfg.Now = func() time.Time { return at(3600) }
	backfill := evStart("b", 50)
	backfill.EventName = "backfill"
	ev1 := state.Unit{Stream: state.Events, Partition: 1}
	for _, maxCached := range []int{0, 1, -1} {
		s, err := state.Open(state.Options{Publishers: []string{"p"}, NoSync: true, MaxCachedOpen: maxCached})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		for _, u := range []state.Unit{evUnit, ev1, netUnit} {
			if err := s.Own(u); err != nil {
				t.Fatal(err)
			}
		}
		j := map[state.Unit]*joiner{}
		run := func(u state.Unit, recs ...schemas.Record) {
			t.Helper()
			if j[u] == nil {
				j[u] = &joiner{rules: newRules(cfg), clock: &clock{}, wall: testclock.Now}
			}
			err := s.Update(context.Background(), u, func(b *state.Batch) error {
				var st joinStats
				for _, r := range recs {
					if err := j[u].apply(b, r, &st); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		// Deadlines: the orphan's at 610 s, a's at 3700, c's at 3800, b's
		// (backfill, 3 h) at 10850: the oldest start is b's, 50 s.
		run(evUnit, evStart("a", 100), backfill, evEnd("orphan", 10, ""), evStart("c", 200), evStart("done", 0), evEnd("done", 5, ""))
		run(netUnit, netStart("n", "q", 30))
		g := newOldestOpen(s, cfg)
		f := func(what string, want ...string) {
			t.Helper()
			exp := "# HELP pipetel_oldest_open_seconds Age, by the instance's wall clock, of the oldest started and unfinished event (stream events) or network operation (stream network) of the owned partition; 0 when none is open.\n" +
				"# TYPE pipetel_oldest_open_seconds gauge\n" + strings.Join(want, "\n") + "\n"
			if err := testutil.CollectAndCompare(g, strings.NewReader(exp)); err != nil {
				t.Errorf("cache bound %d, %s: %v", maxCached, what, err)
			}
		}
		f("three owned partitions",
			`pipetel_oldest_open_seconds{partition="0",stream="events"} 3550`,
			`pipetel_oldest_open_seconds{partition="1",stream="events"} 0`,
			`pipetel_oldest_open_seconds{partition="0",stream="network"} 3570`)
		run(evUnit, evEnd("b", 400, ""))
		run(ev1, evEnd("end-only", 20, "")) // open, but without a start
		f("b finished",
			`pipetel_oldest_open_seconds{partition="0",stream="events"} 3500`,
			`pipetel_oldest_open_seconds{partition="1",stream="events"} 0`,
			`pipetel_oldest_open_seconds{partition="0",stream="network"} 3570`)
		s.Disown(evUnit)
		s.Disown(netUnit)
		f("partitions revoked", `pipetel_oldest_open_seconds{partition="1",stream="events"} 0`)
	}
}
