package state

import (
	"bytes"
	"container/heap"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// While a unit's open-task cache is complete, its deadline index lives in
// memory (a min-heap of deadlines over the cached entries) and Badger's
// deadline keys are neither written nor read: the index is derived, and the
// cache holds every entry it is derived from. This saves a write and a
// delete per open task that outlives its batch. Once the cache spills,
// Badger's index must be exact again, so it is rebuilt from the cache
// before the first batch that reads it, and a marker key says that it is
// exact: a unit opened with more open entries than the cache holds rebuilds
// it from the pending entries when the marker is missing (a crash while the
// index was in memory, or in the middle of a rebuild).

// tagDeadlineExact marks a unit whose Badger deadline index is exact; it
// is derived (never logged) and dropped with the unit.
var (
	tagEventDeadlineExact = [2]byte{'x', 'k'} // + p
	tagNetDeadlineExact   = [2]byte{'y', 'k'} // + p
)

func deadlineExactTag(s Stream) [2]byte {
	if s == Network {
		return tagNetDeadlineExact
	}
	return tagEventDeadlineExact
}

// deadlineItem is one deadline of one cached entry. Items go stale when
// the entry's deadline moves or the entry goes; a stale item is dropped
// when it reaches the top.
type deadlineItem struct {
	at int64
	id string
}

// deadlineHeap orders items by deadline, then id: the order of Badger's
// deadline keys, so both indexes expire entries in the same order.
type deadlineHeap []deadlineItem

func (h deadlineHeap) Len() int { return len(h) }
func (h deadlineHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].id < h[j].id
}
func (h deadlineHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *deadlineHeap) Push(x any)   { *h = append(*h, x.(deadlineItem)) }
func (h *deadlineHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// rebuildDeadlines derives the heap from the cached entries alone: after
// loading, after a batch that did not commit (its pushes and pops are
// undone), and when stale items outnumber the live ones.
func (c *openCache) rebuildDeadlines() {
	h := c.deadlines[:0]
	for id, pe := range c.events {
		if pe.Deadline != 0 {
			h = append(h, deadlineItem{pe.Deadline, id})
		}
	}
	for id, pn := range c.network {
		if pn.Deadline != 0 {
			h = append(h, deadlineItem{pn.Deadline, id})
		}
	}
	heap.Init(&h)
	c.deadlines, c.deadlinesDirty = h, false
}

// compactDeadlines rebuilds the heap once stale items are the majority, so
// tasks that come and go do not grow it without bound.
func (c *openCache) compactDeadlines() {
	if len(c.deadlines) > 2*(len(c.events)+len(c.network))+1024 {
		c.rebuildDeadlines()
	}
}

// liveDeadline is the deadline of entry id as this batch sees it.
func (b *Batch) liveDeadline(id string) (int64, bool) {
	if ch, ok := b.pendingChanges[id]; ok {
		switch {
		case ch.deleted:
			return 0, false
		case ch.event != nil:
			return ch.event.Deadline, true
		default:
			return ch.network.Deadline, true
		}
	}
	if b.cache.events != nil {
		pe, ok := b.cache.events[id]
		return pe.Deadline, ok
	}
	pn, ok := b.cache.network[id]
	return pn.Deadline, ok
}

// dueInMemory is Due over the cache's heap.
func (b *Batch) dueInMemory(now int64, max int) ([]Due, int64) {
	c := b.cache
	b.deadlinesTouched = true
	var due []Due
	for len(c.deadlines) > 0 {
		top := c.deadlines[0]
		if dl, ok := b.liveDeadline(top.id); !ok || dl != top.at {
			heap.Pop(&c.deadlines)
			continue
		}
		if n := len(due); n > 0 && due[n-1].Deadline == top.at && b.dueID(due[n-1]) == top.id {
			heap.Pop(&c.deadlines) // the same deadline pushed twice
			continue
		}
		if top.at > now || (max > 0 && len(due) == max) {
			return due, top.at
		}
		heap.Pop(&c.deadlines)
		d := Due{Deadline: top.at}
		if b.unit.Stream == Network {
			d.TaskID, d.OpID = splitNetID([]byte(top.id))
		} else {
			d.TaskID = top.id
		}
		due = append(due, d)
	}
	return due, 0
}

func (b *Batch) dueID(d Due) string {
	if b.unit.Stream == Network {
		return string(netID(d.TaskID, d.OpID))
	}
	return d.TaskID
}

// materializeDeadlines makes Badger's deadline index of u exact from the
// cache's entries, for a cache that spilled.
func (s *Store) materializeDeadlines(u Unit, c *openCache) error {
	return s.writeDeadlines(u, func(fn func(id []byte, dl int64) error) error {
		for id, pe := range c.events {
			if pe.Deadline != 0 {
				if err := fn([]byte(id), pe.Deadline); err != nil {
					return err
				}
			}
		}
		for id, pn := range c.network {
			if pn.Deadline != 0 {
				if err := fn([]byte(id), pn.Deadline); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// ensureDeadlines makes Badger's deadline index of u exact when its marker
// is missing, from u's pending entries: for a unit owned with more open
// entries than the cache holds.
func (s *Store) ensureDeadlines(u Unit) error {
	exact, err := s.deadlinesExact(u)
	if err != nil || exact {
		return err
	}
	return s.writeDeadlines(u, func(fn func(id []byte, dl int64) error) error {
		return s.eachPendingDeadline(u, func(id []byte, dl int64) error { return fn(bytes.Clone(id), dl) })
	})
}

// writeDeadlines replaces Badger's deadline index of u (every old key of it
// removed first) with the deadlines each yields, then sets the marker. A
// crash on the way leaves no marker, and the next owner rebuilds.
func (s *Store) writeDeadlines(u Unit, each func(fn func(id []byte, dl int64) error) error) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	if err := s.clearDeadlines(wb, u); err != nil {
		return err
	}
	tag := deadlineTag(u.Stream)
	if err := each(func(id []byte, dl int64) error {
		return wb.Set(key(tag, u.Partition, ordered(dl), id), nil)
	}); err != nil {
		return err
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("cannot write the deadline index of %s partition %d: %w", u.Stream, u.Partition, err)
	}
	return s.setDeadlinesExact(u)
}

// dropDeadlineMarker removes u's marker once the index lives in memory
// again. Until it is gone the cache must stay spilled: a later owner would
// trust Badger's keys.
func (s *Store) dropDeadlineMarker(u Unit) error {
	if err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Delete(prefix(deadlineExactTag(u.Stream), u.Partition))
	}); err != nil {
		return fmt.Errorf("cannot drop the deadline marker of %s partition %d: %w", u.Stream, u.Partition, err)
	}
	return nil
}

// clearDeadlineKeys removes Badger's deadline keys of u after its marker
// went. It may fail harmlessly: without the marker the keys are never read,
// and the next write of the index removes them first.
func (s *Store) clearDeadlineKeys(u Unit) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	if err := s.clearDeadlines(wb, u); err != nil {
		return err
	}
	return wb.Flush()
}

// dropDeadlines is dropDeadlineMarker then clearDeadlineKeys, for a unit
// whose marker is set.
func (s *Store) dropDeadlines(u Unit) error {
	exact, err := s.deadlinesExact(u)
	if err != nil || !exact {
		return err
	}
	if err := s.dropDeadlineMarker(u); err != nil {
		return err
	}
	return s.clearDeadlineKeys(u)
}

func (s *Store) deadlinesExact(u Unit) (bool, error) {
	exact := false
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(prefix(deadlineExactTag(u.Stream), u.Partition))
		if err == badger.ErrKeyNotFound {
			return nil
		}
		exact = err == nil
		return err
	})
	return exact, err
}

func (s *Store) setDeadlinesExact(u Unit) error {
	return s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(prefix(deadlineExactTag(u.Stream), u.Partition), nil)
	})
}

// clearDeadlines deletes every Badger deadline key of u in wb.
func (s *Store) clearDeadlines(wb *badger.WriteBatch, u Unit) error {
	pre := prefix(deadlineTag(u.Stream), u.Partition)
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pre})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := wb.Delete(it.Item().KeyCopy(nil)); err != nil {
				return err
			}
		}
		return nil
	})
}

// eachPendingDeadline calls fn with the id and deadline of every pending
// entry of u that has one.
func (s *Store) eachPendingDeadline(u Unit, fn func(id []byte, dl int64) error) error {
	tag := tagPendingEvent
	if u.Stream == Network {
		tag = tagPendingNet
	}
	pre := prefix(tag, u.Partition)
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pre, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			var dl int64
			err := it.Item().Value(func(v []byte) error {
				if u.Stream == Network {
					var pn PendingNetwork
					if err := decodeValue(k, v, &pn); err != nil {
						return err
					}
					dl = pn.Deadline
					return nil
				}
				var pe PendingEvent
				if err := decodeValue(k, v, &pe); err != nil {
					return err
				}
				dl = pe.Deadline
				return nil
			})
			if err != nil {
				return err
			}
			if dl != 0 {
				if err := fn(k[len(pre):], dl); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
