package processor

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
)

func expiryConfig() Config {
	return Config{
		Brokers: []string{"unused:1"}, TaskTimeout: time.Hour, OrphanGrace: 10 * time.Minute,
		TaskTimeouts: map[string]time.Duration{"fast": time.Minute}, MaxOpenTasks: 1000,
	}.WithDefaults()
}

// runBatches applies recs in batches of size n (0: one batch) with one
// joiner that lives across the batches, like a partition consumer.
func runBatches(t *testing.T, s *state.Store, cfg Config, n int, recs []schemas.Record) joinStats {
	t.Helper()
	j := &joiner{rules: newRules(cfg), clock: &clock{}, wall: func() time.Time { return t0.Add(1000 * time.Hour) }}
	var total joinStats
	if n == 0 {
		n = len(recs)
	}
	for start := 0; start < len(recs); start += n {
		var st joinStats
		saved := *j.clock
		err := s.Update(context.Background(), evUnit, func(b *state.Batch) error {
			st, *j.clock = joinStats{}, saved
			for _, r := range recs[start:min(start+n, len(recs))] {
				if err := j.apply(b, r, &st); err != nil {
					return err
				}
			}
			return b.SetStreamTime(j.clock.stream)
		})
		if err != nil {
			t.Fatal(err)
		}
		total.applied += st.applied
		total.duplicates += st.duplicates
		total.late += st.late
		total.finished += st.finished
		total.timedOut += st.timedOut
		total.orphans += st.orphans
	}
	return total
}

func eventJSON(t *testing.T, s *state.Store, task string) string {
	t.Helper()
	m, found, err := s.Event(task)
	if err != nil || !found {
		t.Fatalf("event %q: found %v, err %v", task, found, err)
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func named(r schemas.Record, name string) schemas.Record { r.EventName = name; return r }

func TestExpiry(t *testing.T) {
	tick := func(sec float64) schemas.Record { return evRetry("clock", sec) } // advances stream time
	type want struct {
		task, status, error string
	}
	cases := []struct {
		name  string
		recs  []schemas.Record
		want  []want
		stats joinStats
	}{{
		name:  "start without end times out one hour later",
		recs:  []schemas.Record{evStart("a", 0), tick(3599), tick(3600)},
		want:  []want{{"a", "timed_out", "no end record within 1h0m0s of the start"}},
		stats: joinStats{applied: 3, timedOut: 1},
	}, {
		name:  "one nanosecond before the deadline nothing expires",
		recs:  []schemas.Record{evStart("a", 0), tick(3599.999999999)},
		want:  []want{{"a", "pending", ""}},
		stats: joinStats{applied: 2},
	}, {
		name:  "end before the deadline completes the task",
		recs:  []schemas.Record{evStart("a", 0), evEnd("a", 3599, ""), tick(7200)},
		want:  []want{{"a", "completed", ""}},
		stats: joinStats{applied: 3, finished: 1},
	}, {
		name:  "end after expiry is a duplicate and changes nothing",
		recs:  []schemas.Record{evStart("a", 0), tick(3600), evEnd("a", 3700, "")},
		want:  []want{{"a", "timed_out", "no end record within 1h0m0s of the start"}},
		stats: joinStats{applied: 2, duplicates: 1, timedOut: 1},
	}, {
		name:  "per event name timeout",
		recs:  []schemas.Record{named(evStart("f", 0), "fast"), evStart("s", 0), tick(60)},
		want:  []want{{"f", "timed_out", "no end record within 1m0s of the start"}, {"s", "pending", ""}},
		stats: joinStats{applied: 3, timedOut: 1},
	}, {
		name:  "end without start is an orphan after the grace",
		recs:  []schemas.Record{evEnd("o", 0, "boom"), tick(599), tick(600)},
		want:  []want{{"o", "orphan", "no start record within 10m0s of the first record"}},
		stats: joinStats{applied: 3, orphans: 1},
	}, {
		name:  "a start within the grace joins the orphan-to-be",
		recs:  []schemas.Record{evEnd("o", 5, ""), evStart("o", 1), tick(900)},
		want:  []want{{"o", "completed", ""}},
		stats: joinStats{applied: 3, finished: 1},
	}, {
		name:  "stream time never goes back",
		recs:  []schemas.Record{evStart("a", 0), tick(3600), evStart("b", 1), tick(5), tick(3600.5)},
		want:  []want{{"a", "timed_out", "no end record within 1h0m0s of the start"}, {"b", "pending", ""}},
		stats: joinStats{applied: 5, timedOut: 1},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, evUnit)
			st := runBatches(t, s, expiryConfig(), 1, tc.recs)
			if st != tc.stats {
				t.Errorf("stats %+v, want %+v", st, tc.stats)
			}
			for _, w := range tc.want {
				m, found, err := s.Event(w.task)
				if err != nil || !found {
					t.Fatalf("event %q: found %v err %v", w.task, found, err)
				}
				if string(m.Status) != w.status || m.Error != w.error {
					t.Errorf("%s: status %q error %q, want %q %q", w.task, m.Status, m.Error, w.status, w.error)
				}
				if m.Status == schemas.StatusTimedOut && (m.DurationSeconds != nil || m.EndTime != nil) {
					t.Errorf("%s: a timed-out event has no end: %+v", w.task, m)
				}
			}
		})
	}
}

func TestExpiryClampsFutureRecordTimes(t *testing.T) {
	s := newStore(t, evUnit)
	cfg := expiryConfig()
	j := &joiner{rules: newRules(cfg), clock: &clock{}, wall: func() time.Time { return t0 }}
	err := s.Update(context.Background(), evUnit, func(b *state.Batch) error {
		var st joinStats
		for _, r := range []schemas.Record{evStart("a", 0), evRetry("bad-clock", 10*3600)} {
			if err := j.apply(b, r, &st); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := time.Unix(0, j.clock.stream).UTC(), t0.Add(maxClockSkew); !got.Equal(want) {
		t.Fatalf("stream time %v, want the wall clock plus %v = %v", got, maxClockSkew, want)
	}
	if m, _, _ := s.Event("a"); m.Status != schemas.StatusPending {
		t.Fatalf("a record ten hours ahead expired %+v", m)
	}
}

func TestOpenTaskCap(t *testing.T) {
	s := newStore(t, evUnit)
	cfg := expiryConfig()
	cfg.MaxOpenTasks = 3
	recs := []schemas.Record{evStart("a", 0), evStart("b", 1), evStart("c", 2), evStart("d", 3), evStart("e", 4)}
	st := runBatches(t, s, cfg, 0, recs)
	if st.timedOut != 2 || s.OpenTasksOf(evUnit) != 3 {
		t.Fatalf("stats %+v, open %d: want 2 expired early and 3 open", st, s.OpenTasksOf(evUnit))
	}
	for task, status := range map[string]schemas.Status{"a": "timed_out", "b": "timed_out", "c": "pending", "d": "pending", "e": "pending"} {
		m, _, _ := s.Event(task)
		if m.Status != status {
			t.Errorf("%s: %q, want %q", task, m.Status, status)
		}
		if status == "timed_out" && m.Error != "expired early: the partition reached max_open_tasks (3)" {
			t.Errorf("%s: error %q", task, m.Error)
		}
	}
}

// TestReplayIsDeterministic applies one record sequence with different batch
// sizes: every metric, the retry statistics and the aggregates come out the
// same.
func TestReplayIsDeterministic(t *testing.T) {
	var recs []schemas.Record
	for i := range 60 {
		id := string(rune('a'+i%26)) + string(rune('A'+i/26))
		sec := float64(i * 150)
		switch i % 4 {
		case 0:
			recs = append(recs, evStart(id, sec), evEnd(id, sec+30, ""))
		case 1:
			recs = append(recs, evStart(id, sec), evRetry(id, sec+1)) // times out
		case 2:
			recs = append(recs, evEnd(id, sec, "x")) // orphan
		case 3:
			recs = append(recs, evStart(id, sec), evEnd(id, sec+4000, "")) // end after its deadline
		}
	}
	outputs := map[int]string{}
	for _, size := range []int{1, 7, 0} {
		s := newStore(t, evUnit)
		runBatches(t, s, expiryConfig(), size, recs)
		page, err := s.Events(context.Background(), state.EventQuery{Limit: schemas.MaxLimit})
		if err != nil {
			t.Fatal(err)
		}
		rs, _ := s.RetryStats()
		aggs, _ := s.Aggregates()
		b, _ := json.Marshal([]any{page, rs, aggs})
		outputs[size] = string(b)
	}
	if outputs[1] != outputs[7] || outputs[1] != outputs[0] {
		t.Fatalf("replays differ:\n1: %s\n7: %s\nall: %s", outputs[1], outputs[7], outputs[0])
	}
}

func TestIdleTickExpiresWithoutRecords(t *testing.T) {
	s := newStore(t, evUnit)
	cfg := expiryConfig()
	cfg.IdleTimeAdvance = time.Second
	cfg.Now = testclock.Now
	c := newTestConsumer(t, s, cfg, io.Discard)
	runBatchesWith(t, s, c.join, []schemas.Record{evStart("a", 0)})
	// Idle for less than IdleTimeAdvance: nothing moves.
	c.lastRecord = time.Now()
	if err := c.idleTick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := eventJSON(t, s, "a"); !strings.Contains(got, `"status":"pending"`) {
		t.Fatalf("expired too early: %s", got)
	}
	// Idle for two hours of wall clock: stream time follows it.
	c.lastRecord = time.Now().Add(-2 * time.Hour)
	if err := c.idleTick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := eventJSON(t, s, "a"); !strings.Contains(got, `"status":"timed_out"`) {
		t.Fatalf("idle partition did not expire: %s", got)
	}
}

func runBatchesWith(t *testing.T, s *state.Store, j *joiner, recs []schemas.Record) {
	t.Helper()
	err := s.Update(context.Background(), evUnit, func(b *state.Batch) error {
		var st joinStats
		for _, r := range recs {
			if err := j.apply(b, r, &st); err != nil {
				return err
			}
		}
		return b.SetStreamTime(j.clock.stream)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPausePolicy(t *testing.T) {
	s := newStore(t, evUnit)
	cfg := expiryConfig()
	cfg.MaxOpenTasks, cfg.OpenTaskPolicy = 2, PolicyPause
	p := &Processor{cfg: cfg, store: s}
	c := &partitionConsumer{p: p, unit: evUnit}
	j := &joiner{rules: newRules(cfg), clock: &clock{}, wall: testclock.Now}
	f := func(recs []schemas.Record, wantOpen int64, wantPaused bool) {
		t.Helper()
		runBatchesWith(t, s, j, recs)
		if got := s.OpenTasksOf(evUnit); got != wantOpen {
			t.Fatalf("open %d, want %d", got, wantOpen)
		}
		if got := c.paused(); got != wantPaused {
			t.Fatalf("paused %v, want %v", got, wantPaused)
		}
	}
	f([]schemas.Record{evStart("a", 0)}, 1, false)
	// The pause policy never expires early: the partition stops fetching.
	f([]schemas.Record{evStart("b", 1), evStart("c", 2)}, 3, true)
	f([]schemas.Record{evEnd("b", 3, "")}, 2, true)
	f([]schemas.Record{evEnd("c", 4, "")}, 1, false)
}
