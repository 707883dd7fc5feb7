package state

import (
	"github.com/dgraph-io/badger/v4"
)

// DefaultMaxCachedOpen is how many open entries (pending tasks, or pending
// network operations) per owned unit the store keeps decoded in memory.
const DefaultMaxCachedOpen = 100_000

// openCache mirrors one owned unit's pending entries in memory, so the join
// reads them (and learns that a task is not open) without a Badger lookup.
// It is a write-through cache: Badger and the changelog still get every
// write, and the cache takes a batch's changes only after the batch
// commits. While the unit holds more open entries than the bound the cache
// is not complete ("spilled"): reads go to Badger, and the cache is loaded
// again once the unit is back under half the bound.
//
// Only the unit's writer (its partition goroutine) touches an openCache;
// Store.mu guards the map that holds them.
type openCache struct {
	complete bool
	events   map[string]PendingEvent   // task_id → state
	network  map[string]PendingNetwork // string(netID) → state

	// deadlines is the unit's deadline index while the cache is complete
	// (see deadlines.go); deadlinesDirty says a batch that changed it did
	// not commit, so it is derived again before the next batch.
	deadlines      deadlineHeap
	deadlinesDirty bool
	// spilled: the last commit took the cache past its bound; the next
	// batch makes Badger's deadline index exact, then drops the entries.
	spilled bool
	// oldest is the oldest cached entry with a start (oldest.go).
	oldest oldestStarted
}

// pendingChange is one batch's last write of a pending entry.
type pendingChange struct {
	event   *PendingEvent
	network *PendingNetwork
	deleted bool

	existed      bool  // Badger holds the entry (as of the last writePending)
	origDeadline int64 // its indexed deadline there
	dirty        bool  // changed since the last writePending
}

func (s *Store) maxCachedOpen() int64 {
	switch {
	case s.opts.MaxCachedOpen < 0:
		return 0
	case s.opts.MaxCachedOpen == 0:
		return DefaultMaxCachedOpen
	}
	return int64(s.opts.MaxCachedOpen)
}

// loadOpenCache reads every pending entry of u into a complete cache, or
// returns an incomplete one when u holds more than the bound.
func (s *Store) loadOpenCache(u Unit, open int64) (*openCache, error) {
	c := &openCache{}
	if open > s.maxCachedOpen() {
		return c, nil
	}
	tag := tagPendingEvent
	if u.Stream == Network {
		tag = tagPendingNet
		c.network = make(map[string]PendingNetwork, open)
	} else {
		c.events = make(map[string]PendingEvent, open)
	}
	pre := prefix(tag, u.Partition)
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pre, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			id := string(k[len(pre):])
			err := it.Item().Value(func(v []byte) error {
				if u.Stream == Network {
					var pn PendingNetwork
					if err := decodeValue(k, v, &pn); err != nil {
						return err
					}
					c.network[id] = pn
					return nil
				}
				var pe PendingEvent
				if err := decodeValue(k, v, &pe); err != nil {
					return err
				}
				c.events[id] = pe
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.complete = true
	c.rebuildDeadlines()
	c.rescanOldest()
	return c, nil
}

// cacheOf returns u's cache, loading it again when it spilled and u is back
// under half the bound; nil when u is not owned. Called by u's writer. The
// deadline index moves with the cache: into Badger when it spills, back
// into memory when it is loaded again.
func (s *Store) cacheOf(u Unit) (*openCache, error) {
	s.mu.Lock()
	c, open := s.caches[u], s.pending[u]
	s.mu.Unlock()
	switch {
	case c == nil:
		return nil, nil
	case c.complete && c.spilled:
		if err := s.materializeDeadlines(u, c); err != nil {
			return nil, err
		}
		c.complete, c.spilled, c.events, c.network, c.deadlines = false, false, nil, nil, nil
		s.mu.Lock()
		s.publishOldestLocked(u, c)
		s.mu.Unlock()
		return c, nil
	case c.complete:
		if c.deadlinesDirty {
			c.rebuildDeadlines()
		}
		return c, nil
	case open*2 > s.maxCachedOpen():
		return c, nil
	}
	loaded, err := s.loadOpenCache(u, open)
	if err == nil && loaded.complete {
		// Only the marker must go before the index lives in memory; keys
		// a failed clear leaves are never read (clearDeadlineKeys).
		if err = s.dropDeadlineMarker(u); err == nil {
			_ = s.clearDeadlineKeys(u)
		}
	}
	if err != nil {
		return c, nil // stays incomplete: reads go to Badger, its index exact
	}
	s.mu.Lock()
	if s.caches[u] == c {
		s.caches[u] = loaded
		s.publishOldestLocked(u, loaded)
	}
	s.mu.Unlock()
	return loaded, nil
}

// apply takes a committed batch's pending changes; past the bound the cache
// spills.
func (c *openCache) apply(changes map[string]pendingChange, bound int64) {
	if !c.complete {
		return
	}
	rescan := false
	for id, ch := range changes {
		if c.noteOldest(id, ch) {
			rescan = true
		}
		switch {
		case ch.deleted && c.events != nil:
			delete(c.events, id)
		case ch.deleted:
			delete(c.network, id)
		case ch.event != nil:
			c.events[id] = *ch.event
		case ch.network != nil:
			c.network[id] = *ch.network
		}
	}
	if rescan {
		c.rescanOldest()
	}
	if int64(len(c.events)+len(c.network)) > bound {
		c.spilled = true
		return
	}
	c.compactDeadlines()
}
