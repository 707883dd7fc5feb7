package state

import (
	"testing"
	"time"

	"context"

	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/schemas"
)

// TestStreamsOfOnePartitionAreSeparateUnits: the events and network units of
// the same partition number share no key, so restoring one leaves the
// other's aggregates and stream time alone.
func TestStreamsOfOnePartitionAreSeparateUnits(t *testing.T) {
	s, err := Open(Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ev, nw := Unit{Events, 3}, Unit{Network, 3}
	for _, u := range []Unit{ev, nw} {
		if err := s.Own(u); err != nil {
			t.Fatal(err)
		}
	}
	start := testclock.Now().Add(-time.Hour).Truncate(time.Second)
	d := 1.5
	ctx := context.Background()
	if err := s.Update(ctx, ev, func(b *Batch) error {
		if err := b.SetStreamTime(100); err != nil {
			return err
		}
		return b.FinishEvent(schemas.EventMetric{TaskID: "t", EventName: "e", StartTime: &start, DurationSeconds: &d, Status: schemas.StatusCompleted})
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, nw, func(b *Batch) error {
		if err := b.SetStreamTime(200); err != nil {
			return err
		}
		return b.FinishNetwork(schemas.NetworkMetric{TaskID: "t", Operation: "q", StartTime: &start, LatencySeconds: &d, Status: schemas.StatusCompleted})
	}); err != nil {
		t.Fatal(err)
	}
	// Rebuild the events unit from an empty log.
	r, err := s.BeginRestore(ev)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Finish(-1); err != nil {
		t.Fatal(err)
	}
	aggs, err := s.Aggregates()
	if err != nil {
		t.Fatal(err)
	}
	if len(aggs) != 1 || aggs[0].Unit != nw || len(aggs[0].Network) != 1 || aggs[0].Network[0].Count != 1 || len(aggs[0].Events) != 0 {
		t.Fatalf("aggregates after restoring the events unit: %+v", aggs)
	}
	if st, _ := s.StreamTime(nw); st != 200 {
		t.Fatalf("network stream time %d, want 200", st)
	}
	if st, _ := s.StreamTime(ev); st != 0 {
		t.Fatalf("events stream time %d after an empty restore, want 0", st)
	}
}
