package state

import (
	"bytes"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/pipetel/pipetel/schemas"
)

// Indexes (failed, duration or latency, expiry, deadline) are derived from
// the pending entries and finished metrics they point at. They are written
// to Badger with their entry, but not to the changelog: a restore derives
// them again from the entries (rebuildIndexes), so the log carries only the
// primary records.

// derivedTags are the tags of derived index keys.
var derivedTags = [][2]byte{
	tagEventFailed, tagEventDuration, tagEventExpiry, tagEventExpiryBucket, tagEventDeadline, tagEventDeadlineExact,
	tagNetFailed, tagNetLatency, tagNetExpiry, tagNetExpiryBucket, tagNetDeadline, tagNetDeadlineExact,
}

// isDerived reports whether k is a derived index key.
func isDerived(k []byte) bool {
	if len(k) < 2 {
		return false
	}
	for _, t := range derivedTags {
		if k[0] == t[0] && k[1] == t[1] {
			return true
		}
	}
	return false
}

// eventIndexKeys are the per-metric index keys of a finished event (its
// expiry is in its batch's bucket, expirybuckets.go).
func eventIndexKeys(p int32, m schemas.EventMetric) [][]byte {
	id := []byte(m.TaskID)
	keys := make([][]byte, 0, 2)
	if m.Status != schemas.StatusCompleted {
		keys = append(keys, key(tagEventFailed, p, id))
	}
	if m.DurationSeconds != nil {
		keys = append(keys, key(tagEventDuration, p, ordered(secondsToNanos(*m.DurationSeconds)), id))
	}
	return keys
}

// networkIndexKeys are the per-metric index keys of a finished network
// operation.
func networkIndexKeys(p int32, m schemas.NetworkMetric) [][]byte {
	id := netID(m.TaskID, m.OpID)
	keys := make([][]byte, 0, 2)
	if m.Status != schemas.StatusCompleted {
		keys = append(keys, key(tagNetFailed, p, id))
	}
	if m.LatencySeconds != nil {
		keys = append(keys, key(tagNetLatency, p, ordered(secondsToNanos(*m.LatencySeconds)), id))
	}
	return keys
}

// rebuildIndexes writes the index keys of every pending entry and finished
// metric of u, after a restore. Index keys a log of an earlier version
// carried are the same keys, written again.
func (s *Store) rebuildIndexes(u Unit) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	finTag, deadTag := tagFinishedEvent, tagEventDeadline
	if u.Stream == Network {
		finTag, deadTag = tagFinishedNet, tagNetDeadline
	}
	err := s.eachPendingDeadline(u, func(id []byte, dl int64) error {
		return wb.Set(key(deadTag, u.Partition, ordered(dl), bytes.Clone(id)), nil)
	})
	if err != nil {
		return fmt.Errorf("cannot rebuild the indexes of %s partition %d: %w", u.Stream, u.Partition, err)
	}
	err = s.db.View(func(txn *badger.Txn) error {
		each := func(tag [2]byte, fn func(k, id, v []byte) error) error {
			pre := prefix(tag, u.Partition)
			it := txn.NewIterator(badger.IteratorOptions{Prefix: pre, PrefetchValues: true})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				k := it.Item().Key()
				if err := it.Item().Value(func(v []byte) error { return fn(k, k[len(pre):], v) }); err != nil {
					return err
				}
			}
			return nil
		}
		return each(finTag, func(k, _, v []byte) error {
			var keys [][]byte
			if u.Stream == Network {
				var m schemas.NetworkMetric
				if err := decodeValue(k, v, &m); err != nil {
					return err
				}
				keys = append(networkIndexKeys(u.Partition, m),
					key(tagNetExpiry, u.Partition, ordered(expiryTime(m.EndTime, m.StartTime)), netID(m.TaskID, m.OpID)))
			} else {
				var m schemas.EventMetric
				if err := decodeValue(k, v, &m); err != nil {
					return err
				}
				// Per-metric expiry keys: a restore does not know which
				// metrics ended together (see expirybuckets.go).
				keys = append(eventIndexKeys(u.Partition, m),
					key(tagEventExpiry, u.Partition, ordered(expiryTime(m.EndTime, m.StartTime)), []byte(m.TaskID)))
			}
			for _, ik := range keys {
				if err := wb.Set(ik, nil); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err == nil {
		err = wb.Flush()
	}
	if err == nil {
		// The restore dropped every key of the unit first: the deadline
		// index is exactly what was just written.
		err = s.setDeadlinesExact(u)
	}
	if err != nil {
		return fmt.Errorf("cannot rebuild the indexes of %s partition %d: %w", u.Stream, u.Partition, err)
	}
	return nil
}
