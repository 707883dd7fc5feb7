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
	return c, nil
}

// cacheOf returns u's cache, loading it again when it spilled and u is back
// under half the bound; nil when u is not owned. Called by u's writer.
func (s *Store) cacheOf(u Unit) *openCache {
	s.mu.Lock()
	c, open := s.caches[u], s.pending[u]
	s.mu.Unlock()
	if c == nil || c.complete || open*2 > s.maxCachedOpen() {
		return c
	}
	loaded, err := s.loadOpenCache(u, open)
	if err != nil {
		return c // stays incomplete: reads go to Badger
	}
	s.mu.Lock()
	if s.caches[u] == c {
		s.caches[u] = loaded
	}
	s.mu.Unlock()
	return loaded
}

// apply takes a committed batch's pending changes; past the bound the cache
// spills.
func (c *openCache) apply(changes map[string]pendingChange, bound int64) {
	if !c.complete {
		return
	}
	for id, ch := range changes {
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
	if int64(len(c.events)+len(c.network)) > bound {
		c.complete, c.events, c.network = false, nil, nil
	}
}
