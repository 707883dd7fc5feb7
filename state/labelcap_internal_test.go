package state

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/pipetel/pipetel/schemas"
)

// capBatch finishes one completed metric per name in one batch of u, task
// ids numbered from *n.
func capBatch(t *testing.T, s *Store, u Unit, n *int, names ...string) {
	t.Helper()
	d := 0.5
	err := s.Update(context.Background(), u, func(b *Batch) error {
		for i, name := range names {
			id := fmt.Sprint("t", *n+i)
			var err error
			if u.Stream == Network {
				err = b.FinishNetwork(schemas.NetworkMetric{TaskID: id, Operation: name, StartTime: &aggTestStart, LatencySeconds: &d, Status: schemas.StatusCompleted, BytesSent: 1})
			} else {
				err = b.FinishEvent(schemas.EventMetric{TaskID: id, EventName: name, StartTime: &aggTestStart, DurationSeconds: &d, Status: schemas.StatusCompleted, RetryCount: 1})
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	*n += len(names)
}

// capSeries is u's aggregates as "name=count" per series, then the
// distinct-name and folded counts.
func capSeries(t *testing.T, s *Store, u Unit) string {
	t.Helper()
	aggs, err := s.Aggregates()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range aggs {
		if a.Unit != u {
			continue
		}
		var out []string
		for _, e := range a.Events {
			out = append(out, fmt.Sprintf("%s=%d/%d", e.EventName, e.Count, e.Retries))
		}
		for _, n := range a.Network {
			out = append(out, fmt.Sprintf("%s=%d/%d", n.Operation, n.Count, n.BytesSent))
		}
		return fmt.Sprintf("%s names=%d folded=%d", strings.Join(out, " "), a.LabelValues, a.Folded)
	}
	return "none"
}

// TestLabelValueCap: a unit gives series of their own to its first
// MaxLabelValues names; the metrics of every later name are counted under
// "other" and as folded, exactly once; a name that has a series keeps it.
// The finished metric keeps its name. The cap's state moves with the
// changelog: a restored unit holds the same series and folds the same
// names afterwards.
func TestLabelValueCap(t *testing.T) {
	tests := []struct {
		name    string
		cap     int
		batches [][]string
		want    string
		// wantNext is after one more batch of the first name (known) and
		// a new one (folded), on the writer and on the restored unit.
		wantNext string
	}{
		{
			name:     "cap+2 names",
			cap:      3,
			batches:  [][]string{{"n0", "n1", "n2", "n3", "n4"}},
			want:     "n0=1/1 n1=1/1 n2=1/1 other=2/2 names=3 folded=2",
			wantNext: "n0=2/2 n1=1/1 n2=1/1 other=3/3 names=3 folded=3",
		},
		{
			name:     "known names keep their series, later ones fold across batches",
			cap:      3,
			batches:  [][]string{{"n0", "n1"}, {"n2", "n3", "n1"}, {"n3", "n4", "n0", "n4"}},
			want:     "n0=2/2 n1=2/2 n2=1/1 other=4/4 names=3 folded=4",
			wantNext: "n0=3/3 n1=2/2 n2=1/1 other=5/5 names=3 folded=5",
		},
		{
			name:     "a real name other shares the series",
			cap:      2,
			batches:  [][]string{{"other", "a"}, {"b", "other", "c"}},
			want:     "a=1/1 other=4/4 names=2 folded=2",
			wantNext: "a=1/1 other=6/6 names=2 folded=3",
		},
		{
			name:     "one name, many metrics",
			cap:      1,
			batches:  [][]string{{"x", "x"}, {"y", "x", "z"}},
			want:     "other=2/2 x=3/3 names=1 folded=2",
			wantNext: "other=3/3 x=4/4 names=1 folded=3",
		},
	}
	for _, st := range []Stream{Events, Network} {
		for _, tc := range tests {
			t.Run(st.String()+"/"+tc.name, func(t *testing.T) {
				u := Unit{st, 5}
				log := &keyLog{}
				a, err := Open(Options{NoSync: true, Changelog: log, MaxLabelValues: tc.cap})
				if err != nil {
					t.Fatal(err)
				}
				defer a.Close()
				if err := a.Own(u); err != nil {
					t.Fatal(err)
				}
				n := 0
				var all []string
				for _, names := range tc.batches {
					capBatch(t, a, u, &n, names...)
					all = append(all, names...)
				}
				if got := capSeries(t, a, u); got != tc.want {
					t.Fatalf("aggregates %s, want %s", got, tc.want)
				}
				// The metrics themselves keep their names.
				for i, name := range all {
					id := fmt.Sprint("t", i)
					var got string
					var found bool
					if st == Network {
						m, ok, err := a.NetworkOp(id, "")
						if err != nil {
							t.Fatal(err)
						}
						got, found = m.Operation, ok
					} else {
						m, ok, err := a.Event(id)
						if err != nil {
							t.Fatal(err)
						}
						got, found = m.EventName, ok
					}
					if !found || got != name {
						t.Fatalf("metric %s: name %q (found %v), want %q", id, got, found, name)
					}
				}

				b, err := Open(Options{NoSync: true, MaxLabelValues: tc.cap})
				if err != nil {
					t.Fatal(err)
				}
				defer b.Close()
				restore(t, b, u, log)
				if got := capSeries(t, b, u); got != tc.want {
					t.Fatalf("restored aggregates %s, want %s", got, tc.want)
				}
				// Both fold the same afterwards: a new name folds, a known
				// one counts under its own.
				na, nb := n, n
				capBatch(t, a, u, &na, all[0], "later")
				capBatch(t, b, u, &nb, all[0], "later")
				if ga, gb := capSeries(t, a, u), capSeries(t, b, u); ga != tc.wantNext || gb != tc.wantNext {
					t.Fatalf("after one more batch: writer %s, restored %s; want %s", ga, gb, tc.wantNext)
				}
			})
		}
	}
}

// TestLabelValueCapKeepsMigratedNames: the names of an aggregates value of
// an earlier version keep their series even past the cap; only names new to
// the unit fold.
func TestLabelValueCapKeepsMigratedNames(t *testing.T) {
	s, err := Open(Options{NoSync: true, MaxLabelValues: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u := Unit{Events, 0}
	if err := s.Own(u); err != nil {
		t.Fatal(err)
	}
	putLegacyAggregates(t, s, u, `{"e":[{"n":"a","s":"completed","c":1,"r":1,"d":{"c":null,"s":0}},{"n":"b","s":"completed","c":1,"r":1,"d":{"c":null,"s":0}}]}`)
	n := 0
	capBatch(t, s, u, &n, "b", "c", "a")
	if got, want := capSeries(t, s, u), "a=2/2 b=2/2 other=1/1 names=2 folded=1"; got != want {
		t.Fatalf("aggregates %s, want %s", got, want)
	}
}
