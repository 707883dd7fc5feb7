package state

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/pipetel/pipetel/schemas"
)

// aggTestStart is the start time of the aggregates tests' metrics; no
// retention runs in them.
var aggTestStart = time.Unix(1_795_000_000, 0).UTC()

func finishEvents(t *testing.T, s *Store, u Unit, ms ...schemas.EventMetric) {
	t.Helper()
	err := s.Update(context.Background(), u, func(b *Batch) error {
		for _, m := range ms {
			if err := b.FinishEvent(m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func event(task, name string, status schemas.Status, d float64, retries int) schemas.EventMetric {
	return schemas.EventMetric{TaskID: task, EventName: name, StartTime: &aggTestStart, DurationSeconds: &d, Status: status, RetryCount: retries}
}

// aggregatesJSON is Store.Aggregates as JSON, every unit.
func aggregatesJSON(t *testing.T, s *Store) string {
	t.Helper()
	aggs, err := s.Aggregates()
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(aggs)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// aggChanges lists the aggregate keys of a logged batch as "set|del kind
// rest", kind being m (metadata), s (series) or - for the value of earlier
// versions.
func aggChanges(batch []Change) []string {
	var out []string
	for _, c := range batch {
		if tag := [2]byte{c.Key[0], c.Key[1]}; tag != tagAggregates && tag != tagNetAggregates {
			continue
		}
		op := "set"
		if c.Delete {
			op = "del"
		}
		kind, rest := "-", ""
		if len(c.Key) > 6 {
			kind, rest = string(c.Key[6]), strings.ReplaceAll(string(c.Key[7:]), "\x00", "/")
		}
		out = append(out, strings.TrimSpace(fmt.Sprintf("%s %s %s", op, kind, rest)))
	}
	return out
}

func wantChanges(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: aggregate changes logged\n%q\nwant\n%q", what, got, want)
	}
}

// TestAggregatesWriteOnlyTouchedSeries: each series is a key of its own; a
// batch writes the series it changed and nothing else, and the counts come
// out exact.
func TestAggregatesWriteOnlyTouchedSeries(t *testing.T) {
	log := &keyLog{}
	s, err := Open(Options{NoSync: true, Changelog: log, DurationBuckets: []float64{1, 5}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u := Unit{Events, 3}
	if err := s.Own(u); err != nil {
		t.Fatal(err)
	}
	var first []schemas.EventMetric
	for i := range 5 {
		first = append(first, event(fmt.Sprint("t", i), fmt.Sprint("name", i), schemas.StatusCompleted, 0.5, 1))
	}
	finishEvents(t, s, u, first...)
	wantChanges(t, "first batch", aggChanges(log.batches[len(log.batches)-1]),
		"set n name0", "set n name1", "set n name2", "set n name3", "set n name4",
		"set s name0/completed", "set s name1/completed", "set s name2/completed", "set s name3/completed", "set s name4/completed", "set m")

	finishEvents(t, s, u, event("u", "name2", schemas.StatusCompleted, 3, 2))
	wantChanges(t, "one more metric of a known series", aggChanges(log.batches[len(log.batches)-1]), "set s name2/completed")

	finishEvents(t, s, u, event("v", "name2", schemas.StatusFailed, 9, 0), event("w", "name2", schemas.StatusFailed, 0.1, 0))
	wantChanges(t, "a new status of a known name", aggChanges(log.batches[len(log.batches)-1]), "set s name2/failed")

	aggs, err := s.Aggregates()
	if err != nil {
		t.Fatal(err)
	}
	if len(aggs) != 1 || aggs[0].Unit != u {
		t.Fatalf("aggregates of %d units, want 1 (%+v)", len(aggs), aggs)
	}
	var got []string
	for _, e := range aggs[0].Events {
		got = append(got, fmt.Sprintf("%s/%s count=%d retries=%d buckets=%v sum=%v", e.EventName, e.Status, e.Count, e.Retries, e.Duration.Counts, e.Duration.Sum))
	}
	want := []string{
		"name0/completed count=1 retries=1 buckets=[1 0 0] sum=0.5",
		"name1/completed count=1 retries=1 buckets=[1 0 0] sum=0.5",
		"name2/completed count=2 retries=3 buckets=[1 1 0] sum=3.5",
		"name2/failed count=2 retries=0 buckets=[1 0 1] sum=9.1",
		"name3/completed count=1 retries=1 buckets=[1 0 0] sum=0.5",
		"name4/completed count=1 retries=1 buckets=[1 0 0] sum=0.5",
	}
	if !slices.Equal(got, want) {
		t.Errorf("series:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !slices.Equal(aggs[0].DurationBounds, []float64{1, 5}) || !slices.Equal(aggs[0].LatencyBounds, DefaultLatencyBuckets) {
		t.Errorf("bounds %v and %v, want [1 5] and the default latency buckets", aggs[0].DurationBounds, aggs[0].LatencyBounds)
	}
}

// putLegacyAggregates stores a unit's aggregates the way earlier versions
// did: one JSON value under tag + partition.
func putLegacyAggregates(t *testing.T, s *Store, u Unit, js string) {
	t.Helper()
	err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(prefix(aggregatesTag(u.Stream), u.Partition), []byte(js))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAggregatesMigrateLegacyValue: the single aggregates value of earlier
// versions is exported as it is until a batch aggregates; that batch splits
// it into series keys, deletes it, and counts on from its values; bounds
// that changed since reset its histograms, as before.
func TestAggregatesMigrateLegacyValue(t *testing.T) {
	legacyEvents := `{"db":[1,5],"lb":[0.5],"e":[` +
		`{"n":"load","s":"completed","c":2,"r":1,"d":{"c":[1,1,0],"s":3.5}},` +
		`{"n":"save","s":"failed","c":1,"r":0,"d":{"c":[0,0,1],"s":9}}]}`
	legacyNetwork := `{"db":[1,5],"lb":[0.5],"n":[` +
		`{"o":"query","s":"completed","c":2,"bs":10,"br":20,"l":{"c":[1,1],"s":0.9}}]}`
	d := 0.5
	tests := []struct {
		name        string
		unit        Unit
		bounds      []float64 // configured; the legacy value has [1 5] and [0.5]
		legacy      string
		finish      func(b *Batch) error
		wantBefore  string // Store.Aggregates before the batch
		wantChanges []string
		wantAfter   string
	}{
		{
			name: "events", unit: Unit{Events, 1}, bounds: []float64{1, 5}, legacy: legacyEvents,
			finish: func(b *Batch) error { return b.FinishEvent(event("t", "load", schemas.StatusCompleted, 0.5, 2)) },
			wantBefore: `[{"Unit":{"Stream":101,"Partition":1},"db":[1,5],"lb":[0.5],"e":[` +
				`{"n":"load","s":"completed","c":2,"r":1,"d":{"c":[1,1,0],"s":3.5}},` +
				`{"n":"save","s":"failed","c":1,"r":0,"d":{"c":[0,0,1],"s":9}}],"lv":2}]`,
			wantChanges: []string{"del -", "set n load", "set n save", "set s load/completed", "set s save/failed", "set m"},
			wantAfter: `[{"Unit":{"Stream":101,"Partition":1},"db":[1,5],"lb":[0.001,0.0025,0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5,10,30],"e":[` +
				`{"n":"load","s":"completed","c":3,"r":3,"d":{"c":[2,1,0],"s":4}},` +
				`{"n":"save","s":"failed","c":1,"r":0,"d":{"c":[0,0,1],"s":9}}],"lv":2}]`,
		},
		{
			name: "events with changed bounds", unit: Unit{Events, 1}, bounds: []float64{2}, legacy: legacyEvents,
			finish: func(b *Batch) error { return b.FinishEvent(event("t", "load", schemas.StatusCompleted, 0.5, 2)) },
			wantBefore: `[{"Unit":{"Stream":101,"Partition":1},"db":[1,5],"lb":[0.5],"e":[` +
				`{"n":"load","s":"completed","c":2,"r":1,"d":{"c":[1,1,0],"s":3.5}},` +
				`{"n":"save","s":"failed","c":1,"r":0,"d":{"c":[0,0,1],"s":9}}],"lv":2}]`,
			wantChanges: []string{"del -", "set n load", "set n save", "set s load/completed", "set s save/failed", "set m"},
			wantAfter: `[{"Unit":{"Stream":101,"Partition":1},"db":[2],"lb":[0.001,0.0025,0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5,10,30],"e":[` +
				`{"n":"load","s":"completed","c":3,"r":3,"d":{"c":[1,0],"s":0.5}},` +
				`{"n":"save","s":"failed","c":1,"r":0,"d":{"c":null,"s":0}}],"lv":2}]`,
		},
		{
			name: "network", unit: Unit{Network, 1}, bounds: []float64{0.5}, legacy: legacyNetwork,
			finish: func(b *Batch) error {
				return b.FinishNetwork(schemas.NetworkMetric{TaskID: "t", Operation: "scan", StartTime: &aggTestStart, LatencySeconds: &d, Status: schemas.StatusCompleted, BytesSent: 1})
			},
			wantBefore: `[{"Unit":{"Stream":110,"Partition":1},"db":[1,5],"lb":[0.5],"n":[` +
				`{"o":"query","s":"completed","c":2,"bs":10,"br":20,"l":{"c":[1,1],"s":0.9}}],"lv":1}]`,
			wantChanges: []string{"del -", "set n query", "set n scan", "set s query/completed", "set s scan/completed", "set m"},
			wantAfter: `[{"Unit":{"Stream":110,"Partition":1},"db":[0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5,10,30,60,120,300],"lb":[0.5],"n":[` +
				`{"o":"query","s":"completed","c":2,"bs":10,"br":20,"l":{"c":[1,1],"s":0.9}},` +
				`{"o":"scan","s":"completed","c":1,"bs":1,"br":0,"l":{"c":[1,0],"s":0.5}}],"lv":2}]`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log := &keyLog{}
			opts := Options{NoSync: true, Changelog: log, DurationBuckets: tc.bounds}
			if tc.unit.Stream == Network {
				opts = Options{NoSync: true, Changelog: log, LatencyBuckets: tc.bounds}
			}
			s, err := Open(opts)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Own(tc.unit); err != nil {
				t.Fatal(err)
			}
			putLegacyAggregates(t, s, tc.unit, tc.legacy)
			if got := aggregatesJSON(t, s); got != tc.wantBefore {
				t.Errorf("before the batch:\n%s\nwant:\n%s", got, tc.wantBefore)
			}
			if err := s.Update(context.Background(), tc.unit, tc.finish); err != nil {
				t.Fatal(err)
			}
			wantChanges(t, "migrating batch", aggChanges(log.batches[len(log.batches)-1]), tc.wantChanges...)
			if got := aggregatesJSON(t, s); got != tc.wantAfter {
				t.Errorf("after the batch:\n%s\nwant:\n%s", got, tc.wantAfter)
			}
			if _, ok := dumpUnit(t, s, tc.unit)[string(prefix(aggregatesTag(tc.unit.Stream), tc.unit.Partition))]; ok {
				t.Error("the value of the earlier version is still stored")
			}
		})
	}
}

// TestAggregatesBoundsChange: when the operator changes the bounds, every
// histogram of the unit starts again at the next batch (a counter reset to
// Prometheus), including series the batch does not touch, while their
// counters go on; the new bounds travel with the unit's changelog.
func TestAggregatesBoundsChange(t *testing.T) {
	dir := t.TempDir()
	log := &keyLog{}
	u := Unit{Events, 0}
	open := func(bounds ...float64) *Store {
		t.Helper()
		s, err := Open(Options{Dir: dir, NoSync: true, Changelog: log, DurationBuckets: bounds})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Own(u); err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open(1)
	finishEvents(t, s, u, event("a1", "a", schemas.StatusCompleted, 0.5, 0), event("b1", "b", schemas.StatusCompleted, 3, 0))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(1, 5)
	defer s.Close()
	before := `[{"Unit":{"Stream":101,"Partition":0},"db":[1],"lb":[0.001,0.0025,0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5,10,30],"e":[` +
		`{"n":"a","s":"completed","c":1,"r":0,"d":{"c":[1,0],"s":0.5}},` +
		`{"n":"b","s":"completed","c":1,"r":0,"d":{"c":[0,1],"s":3}}],"lv":2}]`
	if got := aggregatesJSON(t, s); got != before {
		t.Errorf("before a batch under the new bounds:\n%s\nwant:\n%s", got, before)
	}
	finishEvents(t, s, u, event("a2", "a", schemas.StatusCompleted, 2, 0))
	wantChanges(t, "first batch under the new bounds", aggChanges(log.batches[len(log.batches)-1]), "set s a/completed", "set m")
	after := `[{"Unit":{"Stream":101,"Partition":0},"db":[1,5],"lb":[0.001,0.0025,0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5,10,30],"e":[` +
		`{"n":"a","s":"completed","c":2,"r":0,"d":{"c":[0,1,0],"s":2}},` +
		`{"n":"b","s":"completed","c":1,"r":0,"d":{"c":null,"s":0}}],"lv":2}]`
	if got := aggregatesJSON(t, s); got != after {
		t.Errorf("after a batch under the new bounds:\n%s\nwant:\n%s", got, after)
	}
	// b's next observation starts its histogram again, under the new bounds.
	finishEvents(t, s, u, event("b2", "b", schemas.StatusCompleted, 4, 0))
	if got, want := aggregatesJSON(t, s), strings.Replace(after, `"c":1,"r":0,"d":{"c":null,"s":0}`, `"c":2,"r":0,"d":{"c":[0,1,0],"s":4}`, 1); got != want {
		t.Errorf("after b's next metric:\n%s\nwant:\n%s", got, want)
	}

	r, err := Open(Options{NoSync: true, DurationBuckets: []float64{1, 5}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	restore(t, r, u, log)
	if got, want := aggregatesJSON(t, r), aggregatesJSON(t, s); got != want {
		t.Errorf("restored:\n%s\nwant:\n%s", got, want)
	}
}

// restore rebuilds u in s from every batch of log, and owns it.
func restore(t *testing.T, s *Store, u Unit, log *keyLog) {
	t.Helper()
	r, err := s.BeginRestore(u)
	if err != nil {
		t.Fatal(err)
	}
	for _, batch := range log.batches {
		for _, c := range batch {
			if err := r.Apply(c); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := r.Finish(int64(len(log.batches) - 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Own(u); err != nil {
		t.Fatal(err)
	}
}
