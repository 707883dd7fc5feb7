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
