package state

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Change is one write to a unit's state: a key set to Value, or deleted.
// Keys are the store's own keys; the changelog carries them as they are.
type Change struct {
	Key    []byte
	Value  []byte
	Delete bool
}

// Changelog receives every committed change to a unit's state, in commit
// order, and returns the log position of the last one. The store calls it
// after each transaction commits and before Update returns, so the caller
// commits its input offsets only once the change is durable in the log.
type Changelog interface {
	Append(ctx context.Context, u Unit, changes []Change) (lastOffset int64, err error)
}

// ErrNotLogged is returned (wrapped) by Update when the transaction
// committed locally but the changelog refused it. The unit's local state is
// then ahead of its log; Mark no longer matches and the next assignment
// restores the unit from the log.
var ErrNotLogged = errors.New("state change committed locally but not written to the changelog")

// Mark says up to where a unit's local state is in its changelog: the log
// position of the last change and the input offset applied at that point.
// Local state is current when the log ends at ChangelogOffset and the local
// applied offset equals Applied.
type Mark struct {
	ChangelogOffset int64
	Applied         int64
	HasApplied      bool
}

var tagMark = [2]byte{'m', 'k'} // + stream + partition → Mark

func markKey(u Unit) []byte {
	k := offsetKey(u)
	k[0], k[1] = tagMark[0], tagMark[1]
	return k
}

func (m Mark) bytes() []byte {
	b := make([]byte, 0, 17)
	b = binary.BigEndian.AppendUint64(b, uint64(m.ChangelogOffset))
	b = binary.BigEndian.AppendUint64(b, uint64(m.Applied))
	if m.HasApplied {
		return append(b, 1)
	}
	return append(b, 0)
}

func parseMark(b []byte) (Mark, error) {
	if len(b) != 17 {
		return Mark{}, fmt.Errorf("cannot decode changelog mark: %d bytes, expected 17", len(b))
	}
	return Mark{
		ChangelogOffset: int64(binary.BigEndian.Uint64(b)),
		Applied:         int64(binary.BigEndian.Uint64(b[8:])),
		HasApplied:      b[16] == 1,
	}, nil
}

// Mark returns the unit's changelog mark, false when it has none.
func (s *Store) Mark(u Unit) (Mark, bool, error) {
	var m Mark
	found := false
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(markKey(u))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		return item.Value(func(v []byte) error {
			m, err = parseMark(v)
			return err
		})
	})
	return m, found, err
}

// setMark records that the unit's local state is in the log up to offset.
func (s *Store) setMark(u Unit, changelogOffset int64) error {
	return s.db.Update(func(txn *badger.Txn) error {
		applied, has, err := readInt64(txn, offsetKey(u))
		if err != nil {
			return err
		}
		return txn.Set(markKey(u), Mark{ChangelogOffset: changelogOffset, Applied: applied, HasApplied: has}.bytes())
	})
}

// IsCurrent reports whether the unit's local state is exactly its
// changelog, given logEnd, the offset after the log's last record (0 for an
// empty log): the mark points at the last record and the applied offset has
// not moved since.
func (s *Store) IsCurrent(u Unit, logEnd int64) (bool, error) {
	m, hasMark, err := s.Mark(u)
	if err != nil {
		return false, err
	}
	applied, hasApplied, err := s.LastOffset(u)
	if err != nil {
		return false, err
	}
	if !hasMark {
		return logEnd == 0 && !hasApplied, nil
	}
	return m.ChangelogOffset == logEnd-1 && m.HasApplied == hasApplied && m.Applied == applied, nil
}

// HasState reports whether the unit has applied anything locally.
func (s *Store) HasState(u Unit) (bool, error) {
	_, has, err := s.LastOffset(u)
	return has, err
}

// unitPrefixes lists every key prefix of a unit's state.
func unitPrefixes(u Unit) [][]byte {
	var ps [][]byte
	for _, tag := range unitTags(u.Stream) {
		ps = append(ps, prefix(tag, u.Partition))
	}
	return append(ps, offsetKey(u))
}

// belongs reports whether key is part of unit u's state.
func belongs(u Unit, key []byte) bool {
	if bytes.Equal(key, offsetKey(u)) {
		return true
	}
	for _, tag := range unitTags(u.Stream) {
		if bytes.HasPrefix(key, prefix(tag, u.Partition)) {
			return true
		}
	}
	return false
}

// Restorer rebuilds one unit from its changelog.
type Restorer struct {
	s       *Store
	u       Unit
	wb      *badger.WriteBatch
	records int64
}

// BeginRestore deletes every local key of u and returns a Restorer that
// writes the changelog's records back. The unit must not be owned while
// restoring. Keys are deleted one by one: Badger's DropPrefix blocks every
// writer of the database, and other partitions keep writing meanwhile.
func (s *Store) BeginRestore(u Unit) (*Restorer, error) {
	if err := s.deleteUnit(u); err != nil {
		return nil, fmt.Errorf("cannot drop local state of %s partition %d: %w", u.Stream, u.Partition, err)
	}
	return &Restorer{s: s, u: u, wb: s.db.NewWriteBatch()}, nil
}

func (s *Store) deleteUnit(u Unit) error {
	s.mu.Lock()
	delete(s.caches, u)
	s.mu.Unlock()
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	err := s.db.View(func(txn *badger.Txn) error {
		for _, pre := range append(unitPrefixes(u), markKey(u)) {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: pre})
			for it.Rewind(); it.Valid(); it.Next() {
				if err := wb.Delete(it.Item().KeyCopy(nil)); err != nil {
					it.Close()
					return err
				}
			}
			it.Close()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return wb.Flush()
}

// Apply writes one changelog record. A key that is not part of the unit's
// state means the log is not this unit's, and is an error.
func (r *Restorer) Apply(c Change) error {
	if !belongs(r.u, c.Key) {
		return fmt.Errorf("cannot restore %s partition %d: changelog key %q is not part of its state", r.u.Stream, r.u.Partition, c.Key)
	}
	r.records++
	if c.Delete {
		return r.wb.Delete(bytes.Clone(c.Key))
	}
	return r.wb.Set(bytes.Clone(c.Key), bytes.Clone(c.Value))
}

// Records reports how many records were applied so far.
func (r *Restorer) Records() int64 { return r.records }

// Finish flushes the restored state and marks it current up to the log's
// last offset.
func (r *Restorer) Finish(changelogOffset int64) error {
	if err := r.wb.Flush(); err != nil {
		return fmt.Errorf("cannot write restored state of %s partition %d: %w", r.u.Stream, r.u.Partition, err)
	}
	if err := r.s.rebuildIndexes(r.u); err != nil {
		return err
	}
	return r.s.setMark(r.u, changelogOffset)
}

// Cancel abandons a restore; the unit is left empty and unmarked.
func (r *Restorer) Cancel() { r.wb.Cancel() }

// Snapshot sends the unit's whole local state to the changelog in chunks,
// for a unit whose state predates its log, and marks it current.
func (s *Store) Snapshot(ctx context.Context, u Unit) error {
	if s.opts.Changelog == nil {
		return nil
	}
	var chunk []Change
	last := int64(-1)
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		off, err := s.opts.Changelog.Append(ctx, u, chunk)
		if err != nil {
			return fmt.Errorf("cannot snapshot %s partition %d: %w", u.Stream, u.Partition, err)
		}
		last, chunk = off, chunk[:0]
		return nil
	}
	err := s.db.View(func(txn *badger.Txn) error {
		for _, pre := range unitPrefixes(u) {
			if isDerived(pre) {
				continue // rebuilt by the restore
			}
			it := txn.NewIterator(badger.IteratorOptions{Prefix: pre, PrefetchValues: true})
			for it.Rewind(); it.Valid(); it.Next() {
				v, err := it.Item().ValueCopy(nil)
				if err != nil {
					it.Close()
					return err
				}
				chunk = append(chunk, Change{Key: it.Item().KeyCopy(nil), Value: v})
				if len(chunk) == 1000 {
					if err := flush(); err != nil {
						it.Close()
						return err
					}
				}
			}
			it.Close()
		}
		return flush()
	})
	if err != nil {
		return err
	}
	if last < 0 {
		return nil
	}
	return s.setMark(u, last)
}

func (b *Batch) set(k, v []byte) error {
	if err := b.txn.Set(k, v); err != nil {
		return err
	}
	b.record(Change{Key: k, Value: v})
	return nil
}

func (b *Batch) del(k []byte) error {
	if err := b.txn.Delete(k); err != nil {
		return err
	}
	b.record(Change{Key: k, Delete: true})
	return nil
}

// record keeps the last change of each key, in first-write order; derived
// index keys are not logged (see indexes.go).
func (b *Batch) record(c Change) {
	if b.s.opts.Changelog == nil || isDerived(c.Key) {
		return
	}
	b.changeBytes += len(c.Key) + len(c.Value)
	if i, ok := b.changeAt[string(c.Key)]; ok {
		b.changes[i] = c
		return
	}
	b.changeAt[string(c.Key)] = len(b.changes)
	b.changes = append(b.changes, c)
}

// logChanges appends the committed batch's changes to the changelog and
// moves the unit's mark.
func (b *Batch) logChanges(ctx context.Context) error {
	if b.s.opts.Changelog == nil || len(b.changes) == 0 {
		return nil
	}
	off, err := b.s.opts.Changelog.Append(ctx, b.unit, b.changes)
	if err != nil {
		// The local state now holds changes the log lacks, and no mark
		// (unmarkForLog dropped it in the transaction itself): the next
		// assignment rebuilds the unit from the log.
		return fmt.Errorf("%w: %w", ErrNotLogged, err)
	}
	return b.s.setMark(b.unit, off)
}

// unmarkForLog deletes the unit's mark in the transaction that makes
// changes for the log, so that from its commit until the append has set the
// mark again the unit is not current: a crash (kill -9) in between, or a
// failed append, leaves no mark that could vouch for changes the log lacks.
// Not every transaction moves the applied offset (expiry, retention), so the
// offset alone would not show it.
func (b *Batch) unmarkForLog() error {
	if b.s.opts.Changelog == nil || len(b.changes) == 0 {
		return nil
	}
	return b.txn.Delete(markKey(b.unit))
}
