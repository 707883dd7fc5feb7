package state

import (
	"context"
	"errors"
	"testing"
)

// failingLog accepts appends until fail is set.
type failingLog struct {
	n    int64
	fail bool
}

func (l *failingLog) Append(context.Context, Unit, []Change) (int64, error) {
	if l.fail {
		return 0, errors.New("broker unreachable")
	}
	l.n++
	return l.n - 1, nil
}

// TestFailedAppendMakesTheUnitStale: a transaction that committed locally
// but did not reach the changelog (even one that does not move the applied
// offset, like an expiry) leaves the unit not current, so the next
// assignment rebuilds it from the log.
func TestFailedAppendMakesTheUnitStale(t *testing.T) {
	log := &failingLog{}
	s, err := Open(Options{NoSync: true, Changelog: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u := Unit{Events, 0}
	ctx := context.Background()
	if err := s.Update(ctx, u, func(b *Batch) error { return b.SetOffset(7) }); err != nil {
		t.Fatal(err)
	}
	if cur, err := s.IsCurrent(u, log.n); err != nil || !cur {
		t.Fatalf("after a logged update: current %v, err %v", cur, err)
	}
	log.fail = true
	err = s.Update(ctx, u, func(b *Batch) error { return b.SetStreamTime(99) }) // no offset change
	if !errors.Is(err, ErrNotLogged) {
		t.Fatalf("error %v, want ErrNotLogged", err)
	}
	if cur, err := s.IsCurrent(u, log.n); err != nil || cur {
		t.Fatalf("after a failed append: current %v, err %v; want stale", cur, err)
	}
}

// probeLog records, at each append, whether the unit still had a mark.
type probeLog struct {
	s      *Store
	u      Unit
	n      int64
	marked []bool
}

func (l *probeLog) Append(context.Context, Unit, []Change) (int64, error) {
	_, found, err := l.s.Mark(l.u)
	if err != nil {
		return 0, err
	}
	l.marked = append(l.marked, found)
	l.n++
	return l.n - 1, nil
}

// TestNoMarkBetweenCommitAndAppend: from a transaction's commit until its
// changelog append has returned, the unit has no mark, so a crash in
// between (kill -9) leaves it stale and the next assignment restores it.
func TestNoMarkBetweenCommitAndAppend(t *testing.T) {
	log := &probeLog{u: Unit{Events, 1}}
	s, err := Open(Options{NoSync: true, Changelog: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	log.s = s
	ctx := context.Background()
	for i, fn := range []func(b *Batch) error{
		func(b *Batch) error { return b.SetOffset(7) },
		func(b *Batch) error { return b.SetStreamTime(99) }, // moves no offset, like an expiry
		func(b *Batch) error { return b.SetOffset(8) },
	} {
		if err := s.Update(ctx, log.u, fn); err != nil {
			t.Fatal(err)
		}
		if log.marked[i] {
			t.Fatalf("update %d: the unit had a mark while its changes were not in the log yet", i)
		}
		if cur, err := s.IsCurrent(log.u, log.n); err != nil || !cur {
			t.Fatalf("update %d: after the append current %v (%v), want current", i, cur, err)
		}
	}
	// A transaction without changes for the log keeps the mark.
	if err := s.Update(ctx, log.u, func(b *Batch) error { _, _, err := b.Offset(); return err }); err != nil {
		t.Fatal(err)
	}
	if cur, _ := s.IsCurrent(log.u, log.n); !cur || len(log.marked) != 3 {
		t.Fatalf("a read-only update: current %v, %d appends; want current, 3", cur, len(log.marked))
	}
}
