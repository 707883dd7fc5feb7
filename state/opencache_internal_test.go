package state

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/pipetel/pipetel/schemas"
)

func TestOpenCacheSpillsAndReloads(t *testing.T) {
	s, err := Open(Options{NoSync: true, MaxCachedOpen: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u := Unit{Stream: Events, Partition: 3}
	if err := s.Own(u); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	update := func(fn func(b *Batch) error) error { return s.Update(ctx, u, fn) }
	open := func(ids ...int) {
		t.Helper()
		err := update(func(b *Batch) error {
			for _, i := range ids {
				pe := PendingEvent{HasStart: true, EventName: "e", StartTime: time.Unix(int64(i), 0), Deadline: int64(i + 1000)}
				if err := b.PutPendingEvent(fmt.Sprint(i), pe, true); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	closeTasks := func(ids ...int) {
		t.Helper()
		err := update(func(b *Batch) error {
			for _, i := range ids {
				if err := b.DeletePendingEvent(fmt.Sprint(i)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	cache := func() *openCache {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.caches[u]
	}
	check := func(wantComplete bool, wantOpen ...int) {
		t.Helper()
		c, err := s.cacheOf(u)
		if err != nil {
			t.Fatal(err)
		}
		if c.complete != wantComplete || (c.complete && len(c.events) != len(wantOpen)) {
			t.Fatalf("cache complete %v with %d entries, want %v with %d", c.complete, len(c.events), wantComplete, len(wantOpen))
		}
		err = update(func(b *Batch) error {
			for _, i := range wantOpen {
				pe, found, err := b.PendingEvent(fmt.Sprint(i))
				if err != nil || !found || pe.Deadline != int64(i+1000) {
					return fmt.Errorf("task %d: found %v deadline %d err %v", i, found, pe.Deadline, err)
				}
			}
			if _, found, _ := b.PendingEvent("absent"); found {
				return errors.New("absent task found")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	open(1, 2, 3)
	check(true, 1, 2, 3)

	// A batch that fails leaves the cache as committed.
	boom := errors.New("boom")
	err = update(func(b *Batch) error {
		if err := b.PutPendingEvent("9", PendingEvent{Deadline: 7}, true); err != nil {
			return err
		}
		if err := b.DeletePendingEvent("1"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("update: %v, want boom", err)
	}
	check(true, 1, 2, 3)

	open(4, 5) // 5 open > 4: spills before the next batch
	if c := cache(); c.complete && !c.spilled {
		t.Fatal("cache neither spilled nor spilling with 5 open entries and a bound of 4")
	}
	check(false, 1, 2, 3, 4, 5)
	closeTasks(1, 2) // 3 open: more than half the bound, stays spilled
	check(false, 3, 4, 5)
	closeTasks(3) // 2 open: loads again
	check(true, 4, 5)
	if s.OpenTasksOf(u) != 2 {
		t.Fatalf("open tasks %d, want 2", s.OpenTasksOf(u))
	}
	s.Disown(u)
	if cache() != nil {
		t.Fatal("a disowned unit keeps its cache")
	}
}

type keyLog struct{ batches [][]Change }

func (l *keyLog) Append(_ context.Context, _ Unit, changes []Change) (int64, error) {
	l.batches = append(l.batches, append([]Change(nil), changes...))
	return int64(len(l.batches) - 1), nil
}

// TestDeferredPendingWrites: a task opened and finished within one batch
// leaves nothing of its pending entry or deadline in Badger or the
// changelog; one that stays open across batches is logged once per batch
// and deleted in the batch that finishes it, while its deadline (derived,
// never logged) follows it in the cache's in-memory index.
func TestDeferredPendingWrites(t *testing.T) {
	log := &keyLog{}
	s, err := Open(Options{NoSync: true, Changelog: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u := Unit{Stream: Events, Partition: 1}
	if err := s.Own(u); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pendingKeys := func(batch []Change) []string {
		var out []string
		for _, c := range batch {
			if tag := [2]byte{c.Key[0], c.Key[1]}; tag == tagPendingEvent || tag == tagEventDeadline {
				op := "set"
				if c.Delete {
					op = "del"
				}
				out = append(out, fmt.Sprintf("%s %s %x", op, c.Key[:2], c.Key[6:]))
			}
		}
		return out
	}
	f := func(fn func(b *Batch) error, wantDeadlines []int64, want ...string) {
		t.Helper()
		if err := s.Update(ctx, u, fn); err != nil {
			t.Fatal(err)
		}
		got := pendingKeys(log.batches[len(log.batches)-1])
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("pending changes logged:\n%v\nwant:\n%v", got, want)
		}
		var deadlines []int64
		err := s.Update(ctx, u, func(b *Batch) error {
			due, _, err := b.Due(1<<62, 0)
			for _, d := range due {
				deadlines = append(deadlines, d.Deadline)
			}
			return err
		})
		if err != nil || fmt.Sprint(deadlines) != fmt.Sprint(wantDeadlines) {
			t.Errorf("deadline index %v (%v), want %v", deadlines, err, wantDeadlines)
		}
	}
	put := func(b *Batch, id string, dl int64, isNew bool) error {
		return b.PutPendingEvent(id, PendingEvent{HasStart: true, Deadline: dl}, isNew)
	}
	id := func(s string) string { return fmt.Sprintf("%x", s) }
	f(func(b *Batch) error {
		if err := put(b, "short", 100, true); err != nil {
			return err
		}
		if err := put(b, "long", 200, true); err != nil {
			return err
		}
		if err := put(b, "short", 150, false); err != nil { // a retry moves nothing to Badger
			return err
		}
		if err := b.DeletePendingEvent("short"); err != nil {
			return err
		}
		return b.SetOffset(1)
	}, []int64{200}, "set pe "+id("long"))
	f(func(b *Batch) error {
		if err := put(b, "long", 300, false); err != nil {
			return err
		}
		return b.SetOffset(2)
	}, []int64{300}, "set pe "+id("long"))
	f(func(b *Batch) error {
		if err := b.DeletePendingEvent("long"); err != nil {
			return err
		}
		return b.SetOffset(3)
	}, nil, "del pe "+id("long"))
	if n := s.OpenTasksOf(u); n != 0 {
		t.Fatalf("open tasks %d, want 0", n)
	}
}

func TestReadOutboxBytes(t *testing.T) {
	s, err := Open(Options{NoSync: true, Publishers: []string{"p"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u := Unit{Stream: Events}
	if err := s.Own(u); err != nil {
		t.Fatal(err)
	}
	err = s.Update(context.Background(), u, func(b *Batch) error {
		for i := range 10 {
			d := 1.0
			start := time.Unix(int64(1_795_000_000+i), 0).UTC()
			m := schemas.EventMetric{TaskID: fmt.Sprintf("t%d", i), StartTime: &start, DurationSeconds: &d, Status: schemas.StatusCompleted}
			if err := b.FinishEvent(m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	one, err := s.ReadOutboxBytes("p", 100, 1)
	if err != nil || len(one) != 1 {
		t.Fatalf("a 1-byte bound read %d items (%v), want exactly 1", len(one), err)
	}
	all, err := s.ReadOutboxBytes("p", 100, 0)
	if err != nil || len(all) != 10 {
		t.Fatalf("no byte bound read %d items (%v), want 10", len(all), err)
	}
	data, _ := encodeValue(outboxItem{Enqueued: all[0].Enqueued.UnixNano(), Event: all[0].Event})
	three, err := s.ReadOutboxBytes("p", 100, 3*len(data)-1)
	if err != nil || len(three) != 3 {
		t.Fatalf("a bound just under three items read %d (%v), want 3", len(three), err)
	}
}

// TestDeadlineIndexMovesWithTheCache: while the open-task cache is complete
// Badger holds no deadline key; when it spills, Badger's index is made
// exact (and marked so) before a batch reads it; when the cache is loaded
// again, the marker and the keys go; a unit owned past the bound without
// the marker (a crash while the index was in memory) gets its index rebuilt
// from the pending entries; a batch that expired entries and then failed
// leaves them due.
func TestDeadlineIndexMovesWithTheCache(t *testing.T) {
	s, err := Open(Options{NoSync: true, MaxCachedOpen: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u := Unit{Stream: Events, Partition: 2}
	if err := s.Own(u); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	badgerIndex := func() string {
		t.Helper()
		var got []string
		err := s.db.View(func(txn *badger.Txn) error {
			pre := prefix(tagEventDeadline, u.Partition)
			it := txn.NewIterator(badger.IteratorOptions{Prefix: pre})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				k := it.Item().Key()
				got = append(got, fmt.Sprintf("%d:%s", fromOrdered(k[6:14]), k[14:]))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		exact, err := s.deadlinesExact(u)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("exact=%v %v", exact, got)
	}
	due := func(fail bool) string {
		t.Helper()
		var got []string
		boom := errors.New("boom")
		err := s.Update(ctx, u, func(b *Batch) error {
			d, next, err := b.Due(1<<62, 0)
			for _, x := range d {
				got = append(got, fmt.Sprintf("%d:%s", x.Deadline, x.TaskID))
				if err := b.DeletePendingEvent(x.TaskID); err != nil {
					return err
				}
			}
			if next != 0 {
				got = append(got, fmt.Sprint("next ", next))
			}
			if fail {
				return boom
			}
			return err
		})
		if fail != errors.Is(err, boom) || (!fail && err != nil) {
			t.Fatalf("update: %v (failing %v)", err, fail)
		}
		return fmt.Sprint(got)
	}
	put := func(ids ...int) {
		t.Helper()
		err := s.Update(ctx, u, func(b *Batch) error {
			for _, i := range ids {
				if err := b.PutPendingEvent(fmt.Sprint(i), PendingEvent{HasStart: true, Deadline: int64(1000 + i)}, true); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	f := func(got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	}
	put(3, 1, 2)
	f(badgerIndex(), "exact=false []")
	// Expired in a batch that fails: still due afterwards.
	f(due(true), "[1001:1 1002:2 1003:3]")
	f(due(true), "[1001:1 1002:2 1003:3]")
	put(5, 4)                                            // 5 open: spills
	f(due(true), "[1001:1 1002:2 1003:3 1004:4 1005:5]") // from Badger now
	f(badgerIndex(), "exact=true [1001:1 1002:2 1003:3 1004:4 1005:5]")

	// Owned again without the marker: rebuilt from the pending entries.
	s.Disown(u)
	if err := s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Delete(prefix(tagEventDeadlineExact, u.Partition)); err != nil {
			return err
		}
		return txn.Delete(key(tagEventDeadline, u.Partition, ordered(1004), []byte("4")))
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Own(u); err != nil {
		t.Fatal(err)
	}
	f(badgerIndex(), "exact=true [1001:1 1002:2 1003:3 1004:4 1005:5]")

	// Two expired: 3 open, still past half the bound; then the rest, and
	// the cache loads again with the index in memory.
	err = s.Update(ctx, u, func(b *Batch) error {
		for _, id := range []string{"1", "2"} {
			if err := b.DeletePendingEvent(id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f(badgerIndex(), "exact=true [1003:3 1004:4 1005:5]")
	f(due(false), "[1003:3 1004:4 1005:5]")
	put(7, 6)
	f(badgerIndex(), "exact=false []")
	f(due(false), "[1006:6 1007:7]")
}
