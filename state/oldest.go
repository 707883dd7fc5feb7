package state

import "time"

// While a unit's open-task cache is complete, Badger holds no deadline
// index to walk (deadlines.go), so the cache tracks its oldest started
// entry itself: a change that starts an entry earlier than the oldest
// replaces it, a change to the oldest entry itself rescans the cache. The
// writer publishes the result in Store.oldestMem after each commit, for
// OldestOpenStart on the scrape's goroutine.

// oldestStarted is a cache's oldest entry with a start.
type oldestStarted struct {
	at int64 // Unix nanoseconds; 0 when no cached entry has a start
	id string
}

func (c *openCache) rescanOldest() {
	o := oldestStarted{}
	consider := func(id string, has bool, start time.Time) {
		if !has {
			return
		}
		at := start.UnixNano()
		if o.at == 0 || at < o.at || (at == o.at && id < o.id) {
			o = oldestStarted{at, id}
		}
	}
	for id, pe := range c.events {
		consider(id, pe.HasStart, pe.StartTime)
	}
	for id, pn := range c.network {
		consider(id, pn.HasStart, pn.StartTime)
	}
	c.oldest = o
}

// noteOldest keeps c.oldest right for one applied change; it reports
// whether the cache must be rescanned.
func (c *openCache) noteOldest(id string, ch pendingChange) (rescan bool) {
	if id == c.oldest.id && c.oldest.at != 0 {
		return true
	}
	var has bool
	var start time.Time
	switch {
	case ch.deleted:
		return false
	case ch.event != nil:
		has, start = ch.event.HasStart, ch.event.StartTime
	case ch.network != nil:
		has, start = ch.network.HasStart, ch.network.StartTime
	}
	if has {
		at := start.UnixNano()
		if c.oldest.at == 0 || at < c.oldest.at || (at == c.oldest.at && id < c.oldest.id) {
			c.oldest = oldestStarted{at, id}
		}
	}
	return false
}

// publishOldestLocked records u's oldest started entry for OldestOpenStart
// while the cache holds every entry (also spilled, until the next batch
// moves the deadline index to Badger), and forgets it otherwise. Called
// with s.mu held.
func (s *Store) publishOldestLocked(u Unit, c *openCache) {
	if c == nil || !c.complete {
		delete(s.oldestMem, u)
		return
	}
	s.oldestMem[u] = c.oldest.at
}
