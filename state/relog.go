package state

import (
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// AdvanceMark records that the unit's local state is current up to
// changelog offset off, for a record the log gained that changes no state
// (a fence): the unit stays current across it.
func (s *Store) AdvanceMark(u Unit, off int64) error {
	return s.setMark(u, off)
}

// Unmark drops the unit's changelog mark, so that the next assignment
// rebuilds the unit from the log: for local state the log will not
// reproduce (this instance wrote as a stale owner).
func (s *Store) Unmark(u Unit) error {
	return s.db.Update(func(txn *badger.Txn) error { return txn.Delete(markKey(u)) })
}

// Relog appends the unit's current values of keys to its changelog (a
// tombstone for a key the unit does not hold) and marks the unit current
// up to the append. It repairs a log that received records of another
// writer: appended after them, the owner's values are the ones compaction
// keeps and a restore ends with. Keys of other units and derived keys are
// skipped. Only the unit's writer may call it.
func (s *Store) Relog(ctx context.Context, u Unit, keys [][]byte) error {
	if s.opts.Changelog == nil {
		return nil
	}
	var changes []Change
	err := s.db.View(func(txn *badger.Txn) error {
		seen := map[string]bool{}
		for _, k := range keys {
			if !belongs(u, k) || isDerived(k) || seen[string(k)] {
				continue
			}
			seen[string(k)] = true
			item, err := txn.Get(k)
			if errors.Is(err, badger.ErrKeyNotFound) {
				changes = append(changes, Change{Key: k, Delete: true})
				continue
			}
			if err != nil {
				return err
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			changes = append(changes, Change{Key: k, Value: v})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cannot read state of %s partition %d to log it again: %w", u.Stream, u.Partition, err)
	}
	last := int64(-1)
	for len(changes) > 0 {
		n := min(len(changes), 1000)
		off, err := s.opts.Changelog.Append(ctx, u, changes[:n])
		if err != nil {
			return fmt.Errorf("cannot log state of %s partition %d again: %w", u.Stream, u.Partition, err)
		}
		last, changes = off, changes[n:]
	}
	if last < 0 {
		return nil
	}
	return s.setMark(u, last)
}
