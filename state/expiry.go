package state

import (
	"errors"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Expiry keys: a deadline index per stream, ordered by deadline, and the
// unit's stream time (the latest record time it has seen, advanced with the
// wall clock while the partition is idle).
var (
	tagEventDeadline = [2]byte{'x', 'e'} // + p + ordered deadline + task
	tagNetDeadline   = [2]byte{'y', 'e'} // + p + ordered deadline + task \x00 op
	tagStreamTime    = [2]byte{'t', 'm'} // + p
	tagNetStreamTime = [2]byte{'t', 'n'} // + p
	// The newest record time the unit applied (clamped like stream time, but
	// never advanced by the wall clock): retention counts back from it.
	tagNewestRecord    = [2]byte{'r', 't'} // + p
	tagNetNewestRecord = [2]byte{'r', 'n'} // + p
)

// SetNewestRecordTime stores the newest record time the unit applied.
func (b *Batch) SetNewestRecordTime(ns int64) error {
	return b.set(prefix(newestRecordTag(b.unit.Stream), b.unit.Partition), int64Bytes(ns))
}

func newestRecordTag(s Stream) [2]byte {
	if s == Network {
		return tagNetNewestRecord
	}
	return tagNewestRecord
}

// StreamTime returns the unit's stream time in Unix nanoseconds, 0 when
// nothing was seen yet.
func (b *Batch) StreamTime() (int64, error) {
	n, _, err := readInt64(b.txn, prefix(streamTimeTag(b.unit.Stream), b.unit.Partition))
	return n, err
}

// SetStreamTime stores the unit's stream time.
func (b *Batch) SetStreamTime(ns int64) error {
	return b.set(prefix(streamTimeTag(b.unit.Stream), b.unit.Partition), int64Bytes(ns))
}

func (b *Batch) deadlineTag() [2]byte { return deadlineTag(b.unit.Stream) }

func deadlineTag(st Stream) [2]byte {
	if st == Network {
		return tagNetDeadline
	}
	return tagEventDeadline
}

// moveDeadline replaces the deadline index entry of id (0 means none).
func (b *Batch) moveDeadline(id []byte, old, new int64) error {
	if old == new {
		return nil
	}
	tag := b.deadlineTag()
	if old != 0 {
		if err := b.del(key(tag, b.unit.Partition, ordered(old), id)); err != nil {
			return err
		}
	}
	if new != 0 {
		return b.set(key(tag, b.unit.Partition, ordered(new), id), nil)
	}
	return nil
}

// Due is a pending task (or network operation) whose deadline has passed.
type Due struct {
	Deadline int64
	TaskID   string
	OpID     string // network operations only
}

// Due returns up to max pending entries with a deadline at or before now,
// earliest first, and the earliest deadline after now (0 when none is
// left). max <= 0 means no limit.
func (b *Batch) Due(now int64, max int) ([]Due, int64, error) {
	if err := b.writePending(); err != nil {
		return nil, 0, err
	}
	if b.deferring() {
		due, next := b.dueInMemory(now, max)
		return due, next, nil
	}
	pre := prefix(b.deadlineTag(), b.unit.Partition)
	it := b.txn.NewIterator(badger.IteratorOptions{Prefix: pre})
	defer it.Close()
	var due []Due
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		dl := fromOrdered(k[6:14])
		if dl > now || (max > 0 && len(due) == max) {
			return due, dl, nil
		}
		d := Due{Deadline: dl}
		if b.unit.Stream == Network {
			d.TaskID, d.OpID = splitNetID(k[14:])
		} else {
			d.TaskID = string(k[14:])
		}
		due = append(due, d)
	}
	return due, 0, nil
}

// OpenCount returns the unit's open tasks including this batch's changes.
func (b *Batch) OpenCount() (int64, error) {
	n, err := b.committedOpen()
	return n + b.pendingDelta, err
}

// StreamTime returns unit u's persisted stream time (Unix nanoseconds).
func (s *Store) StreamTime(u Unit) (int64, error) {
	return s.readUnitInt64(streamTimeTag(u.Stream), u)
}

// readUnitInt64 reads one of u's int64 keys; 0 when it is not set.
func (s *Store) readUnitInt64(tag [2]byte, u Unit) (int64, error) {
	var n int64
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		n, _, err = readInt64(txn, prefix(tag, u.Partition))
		return err
	})
	return n, err
}

// OpenTasksOf reports the open tasks of one owned unit.
func (s *Store) OpenTasksOf(u Unit) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending[u]
}

func streamTimeTag(s Stream) [2]byte {
	if s == Network {
		return tagNetStreamTime
	}
	return tagStreamTime
}

func aggregatesTag(s Stream) [2]byte {
	if s == Network {
		return tagNetAggregates
	}
	return tagAggregates
}

// NewestRecordTime returns unit u's persisted newest record time (Unix
// nanoseconds), 0 when it applied none yet.
func (s *Store) NewestRecordTime(u Unit) (int64, error) {
	return s.readUnitInt64(newestRecordTag(u.Stream), u)
}

// OldestOpenStart returns the earliest start time among unit u's open
// entries that have one (an entry with only an end or retries has none),
// for a gauge read at every scrape. It walks u's deadline index from the
// earliest deadline instead of scanning the open entries: an entry's
// deadline is at most maxTimeout (the longest task or operation timeout)
// after its start, so once the deadlines pass the earliest start seen by
// maxTimeout or more, no later entry started before it. With one timeout
// for every entry that is the first entry with a start. The walk stops
// after maxKeys entries; the start is then the earliest among those, never
// earlier than the true one. It reads committed state (what the open-task
// cache mirrors), so it needs no cache and works the same when the cache
// spilled.
func (s *Store) OldestOpenStart(u Unit, maxTimeout time.Duration, maxKeys int) (time.Time, bool, error) {
	s.mu.Lock()
	at, inMemory := s.oldestMem[u]
	s.mu.Unlock()
	if inMemory {
		if at == 0 {
			return time.Time{}, false, nil
		}
		return time.Unix(0, at).UTC(), true, nil
	}
	var oldest time.Time
	found := false
	err := s.db.View(func(txn *badger.Txn) error {
		pre := prefix(deadlineTag(u.Stream), u.Partition)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pre})
		defer it.Close()
		pendTag := tagPendingEvent
		if u.Stream == Network {
			pendTag = tagPendingNet
		}
		n := 0
		for it.Rewind(); it.Valid() && n < maxKeys; it.Next() {
			n++
			k := it.Item().Key()
			if found && fromOrdered(k[6:14])-oldest.UnixNano() >= int64(maxTimeout) {
				return nil
			}
			pk := key(pendTag, u.Partition, k[14:])
			item, err := txn.Get(pk)
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue // an index entry without its entry: nothing open
			}
			if err != nil {
				return err
			}
			var start time.Time
			var has bool
			err = item.Value(func(v []byte) error {
				if u.Stream == Network {
					var pn PendingNetwork
					err := decodeValue(pk, v, &pn)
					start, has = pn.StartTime, pn.HasStart
					return err
				}
				var pe PendingEvent
				err := decodeValue(pk, v, &pe)
				start, has = pe.StartTime, pe.HasStart
				return err
			})
			if err != nil {
				return err
			}
			if has && (!found || start.Before(oldest)) {
				oldest, found = start, true
			}
		}
		return nil
	})
	return oldest, found, err
}
