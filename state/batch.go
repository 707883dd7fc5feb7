package state

import (
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/dgraph-io/badger/v4"

	"github.com/pipetel/pipetel/schemas"
)

// Batch is one transaction on one unit. It is not safe for concurrent use:
// each unit has a single writer, its partition goroutine.
type Batch struct {
	s    *Store
	unit Unit
	txn  *badger.Txn

	pendingDelta int64
	retryStats   *RetryStats // loaded on first use, written by flush
	retryDirty   bool
	outboxAdded  int64

	agg *aggBatch // loaded on first use, written by flush

	cache          *openCache               // the unit's, nil when not owned
	pendingChanges map[string]pendingChange // deferred writes, and the cache's changes after commit
	pendingOrder   []string                 // ids of pendingChanges in first-change order
	openBase       int64                    // committed open count, once read
	openBaseRead   bool
	// deadlinesTouched: the batch pushed to or popped from the cache's
	// deadline heap; committed: its transaction committed.
	deadlinesTouched, committed bool
	expiries                    []expiryEntry // metrics finished, for the batch's expiry bucket

	changes  []Change       // for the changelog, last write of each key
	changeAt map[string]int // key → index in changes
	// changeBytes bounds what one changelog append carries (an upper
	// bound: overwritten keys count twice).
	changeBytes int
}

// Unit returns the unit the batch writes to.
func (b *Batch) Unit() Unit { return b.unit }

// Offset returns the offset of the last input record applied to the unit.
func (b *Batch) Offset() (int64, bool, error) {
	return readInt64(b.txn, offsetKey(b.unit))
}

// SetOffset records off as the last input record applied; it commits with
// the state changes of the same batch.
func (b *Batch) SetOffset(off int64) error {
	return b.set(offsetKey(b.unit), int64Bytes(off))
}

// PendingEvent returns the pending state of task, if any.
func (b *Batch) PendingEvent(taskID string) (PendingEvent, bool, error) {
	if ch, ok := b.pendingChanges[taskID]; ok {
		if ch.deleted {
			return PendingEvent{}, false, nil
		}
		return ch.event.clone(), true, nil
	}
	if b.cache != nil && b.cache.complete {
		pe, ok := b.cache.events[taskID]
		return pe.clone(), ok, nil
	}
	var pe PendingEvent
	found, err := b.get(key(tagPendingEvent, b.unit.Partition, []byte(taskID)), &pe)
	return pe, found, err
}

// deferring reports whether pending writes wait for the end of the batch:
// while the unit's cache is complete, the cache says what Badger holds, so
// a task opened and finished within one batch never reaches Badger or the
// changelog.
func (b *Batch) deferring() bool { return b.cache != nil && b.cache.complete }

// deferPending records a pending entry's latest state for writePending;
// the first change of an entry also records what Badger holds for it.
func (b *Batch) deferPending(id string, ch pendingChange) {
	if prev, ok := b.pendingChanges[id]; ok {
		ch.existed, ch.origDeadline = prev.existed, prev.origDeadline
	} else {
		if b.unit.Stream == Network {
			pn, ok := b.cache.network[id]
			ch.existed, ch.origDeadline = ok, pn.Deadline
		} else {
			pe, ok := b.cache.events[id]
			ch.existed, ch.origDeadline = ok, pe.Deadline
		}
		b.pendingOrder = append(b.pendingOrder, id)
	}
	ch.dirty = true
	b.pendingChanges[id] = ch // lent by the scratch storage, never nil
}

// writePending writes the deferred pending entries to the transaction, in
// first-change order, and their deadlines to the cache's heap (deferring
// happens only while the cache is complete, and then the deadline index is
// the heap). Due calls it before it reads the index; flush at the end of
// the batch.
func (b *Batch) writePending() error {
	tag := tagPendingEvent
	if b.unit.Stream == Network {
		tag = tagPendingNet
	}
	for _, id := range b.pendingOrder {
		ch := b.pendingChanges[id]
		if !ch.dirty {
			continue
		}
		var old, dl int64
		if ch.existed {
			old = ch.origDeadline
		}
		k := key(tag, b.unit.Partition, []byte(id))
		switch {
		case ch.deleted && ch.existed:
			if err := b.del(k); err != nil {
				return err
			}
		case ch.deleted: // opened and finished in this batch: nothing to write
		case ch.event != nil:
			dl = ch.event.Deadline
			if err := b.put(k, *ch.event); err != nil {
				return err
			}
		default:
			dl = ch.network.Deadline
			if err := b.put(k, *ch.network); err != nil {
				return err
			}
		}
		if dl != 0 && dl != old {
			heap.Push(&b.cache.deadlines, deadlineItem{dl, id})
			b.deadlinesTouched = true
		}
		ch.dirty, ch.existed, ch.origDeadline = false, !ch.deleted, dl
		b.pendingChanges[id] = ch
	}
	return nil
}

// PutPendingEvent stores the pending state of task; isNew says whether it
// opens a task (for the open-task count).
// Its Deadline is indexed, so that Due finds it.
func (b *Batch) PutPendingEvent(taskID string, pe PendingEvent, isNew bool) error {
	if b.deferring() {
		if isNew {
			b.pendingDelta++
		}
		b.deferPending(taskID, pendingChange{event: &pe})
		return nil
	}
	var old int64
	if isNew {
		b.pendingDelta++
	} else if prev, found, err := b.PendingEvent(taskID); err != nil {
		return err
	} else if found {
		old = prev.Deadline
	}
	if err := b.moveDeadline([]byte(taskID), old, pe.Deadline); err != nil {
		return err
	}
	return b.put(key(tagPendingEvent, b.unit.Partition, []byte(taskID)), pe)
}

// DeletePendingEvent removes the pending state of task.
func (b *Batch) DeletePendingEvent(taskID string) error {
	prev, found, err := b.PendingEvent(taskID)
	if err != nil || !found {
		return err
	}
	b.pendingDelta--
	if b.deferring() {
		b.deferPending(taskID, pendingChange{deleted: true})
		return nil
	}
	if err := b.moveDeadline([]byte(taskID), prev.Deadline, 0); err != nil {
		return err
	}
	return b.del(key(tagPendingEvent, b.unit.Partition, []byte(taskID)))
}

// FinishedEvent returns the finished metric of task, if any.
func (b *Batch) FinishedEvent(taskID string) (schemas.EventMetric, bool, error) {
	var m schemas.EventMetric
	found, err := b.get(key(tagFinishedEvent, b.unit.Partition, []byte(taskID)), &m)
	return m, found, err
}

// HasFinishedEvent reports whether task has a finished metric, without
// reading it: the join asks this of every task it does not hold open.
func (b *Batch) HasFinishedEvent(taskID string) (bool, error) {
	return b.has(key(tagFinishedEvent, b.unit.Partition, []byte(taskID)))
}

// FinishEvent stores a finished event metric with its indexes, adds it to
// the retry statistics and queues it in every publisher's outbox. The caller
// makes sure the task is not already finished.
func (b *Batch) FinishEvent(m schemas.EventMetric) error {
	p := b.unit.Partition
	id := []byte(m.TaskID)
	if err := b.put(key(tagFinishedEvent, p, id), m); err != nil {
		return err
	}
	for _, k := range eventIndexKeys(p, m) {
		if err := b.set(k, nil); err != nil {
			return err
		}
	}
	b.addExpiry(expiryTime(m.EndTime, m.StartTime), id)
	if err := b.loadRetryStats(); err != nil {
		return err
	}
	b.retryStats.add(m.RetryCount, 1)
	b.retryDirty = true
	if err := b.aggregateEvent(m); err != nil {
		return err
	}
	return b.enqueue(outboxItem{Event: &m})
}

// PendingNetwork returns the pending state of a network operation, if any.
func (b *Batch) PendingNetwork(taskID, opID string) (PendingNetwork, bool, error) {
	id := netID(taskID, opID)
	if ch, ok := b.pendingChanges[string(id)]; ok {
		if ch.deleted {
			return PendingNetwork{}, false, nil
		}
		return *ch.network, true, nil
	}
	if b.cache != nil && b.cache.complete {
		pn, ok := b.cache.network[string(id)]
		return pn, ok, nil
	}
	var pn PendingNetwork
	found, err := b.get(key(tagPendingNet, b.unit.Partition, id), &pn)
	return pn, found, err
}

// PutPendingNetwork stores the pending state of a network operation.
func (b *Batch) PutPendingNetwork(taskID, opID string, pn PendingNetwork, isNew bool) error {
	if b.deferring() {
		if isNew {
			b.pendingDelta++
		}
		b.deferPending(string(netID(taskID, opID)), pendingChange{network: &pn})
		return nil
	}
	var old int64
	if isNew {
		b.pendingDelta++
	} else if prev, found, err := b.PendingNetwork(taskID, opID); err != nil {
		return err
	} else if found {
		old = prev.Deadline
	}
	id := netID(taskID, opID)
	if err := b.moveDeadline(id, old, pn.Deadline); err != nil {
		return err
	}
	return b.put(key(tagPendingNet, b.unit.Partition, id), pn)
}

// DeletePendingNetwork removes the pending state of a network operation.
func (b *Batch) DeletePendingNetwork(taskID, opID string) error {
	prev, found, err := b.PendingNetwork(taskID, opID)
	if err != nil || !found {
		return err
	}
	b.pendingDelta--
	id := netID(taskID, opID)
	if b.deferring() {
		b.deferPending(string(id), pendingChange{deleted: true})
		return nil
	}
	if err := b.moveDeadline(id, prev.Deadline, 0); err != nil {
		return err
	}
	return b.del(key(tagPendingNet, b.unit.Partition, id))
}

// FinishedNetwork returns the finished metric of a network operation, if any.
func (b *Batch) FinishedNetwork(taskID, opID string) (schemas.NetworkMetric, bool, error) {
	var m schemas.NetworkMetric
	found, err := b.get(key(tagFinishedNet, b.unit.Partition, netID(taskID, opID)), &m)
	return m, found, err
}

// HasFinishedNetwork reports whether a network operation has a finished
// metric, without reading it.
func (b *Batch) HasFinishedNetwork(taskID, opID string) (bool, error) {
	return b.has(key(tagFinishedNet, b.unit.Partition, netID(taskID, opID)))
}

// FinishNetwork stores a finished network metric with its indexes and queues
// it in every publisher's outbox.
func (b *Batch) FinishNetwork(m schemas.NetworkMetric) error {
	p := b.unit.Partition
	id := netID(m.TaskID, m.OpID)
	if err := b.put(key(tagFinishedNet, p, id), m); err != nil {
		return err
	}
	for _, k := range networkIndexKeys(p, m) {
		if err := b.set(k, nil); err != nil {
			return err
		}
	}
	b.addExpiry(expiryTime(m.EndTime, m.StartTime), id)
	if err := b.aggregateNetwork(m); err != nil {
		return err
	}
	return b.enqueue(outboxItem{Network: &m})
}

func (b *Batch) has(k []byte) (bool, error) {
	_, err := b.txn.Get(k)
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("cannot read key %q: %w", k, err)
	}
	return true, nil
}

func (b *Batch) get(k []byte, into any) (bool, error) {
	return getValue(b.txn, k, into)
}

func (b *Batch) put(k []byte, v any) error {
	data, err := encodeValue(v)
	if err != nil {
		return fmt.Errorf("cannot encode value of key %q: %w", k, err)
	}
	return b.set(k, data)
}

func (b *Batch) loadRetryStats() error {
	if b.retryStats != nil {
		return nil
	}
	rs := RetryStats{}
	if _, err := b.get(prefix(tagRetryStats, b.unit.Partition), &rs.counts); err != nil {
		return err
	}
	b.retryStats = &rs
	return nil
}

// flush writes what the batch accumulated in memory.
func (b *Batch) flush() error {
	if err := b.writePending(); err != nil {
		return err
	}
	if err := b.writeExpiryBucket(); err != nil {
		return err
	}
	if b.retryDirty {
		if err := b.put(prefix(tagRetryStats, b.unit.Partition), b.retryStats.counts); err != nil {
			return err
		}
	}
	if err := b.flushAggregates(); err != nil {
		return err
	}
	if b.pendingDelta != 0 {
		n, err := b.committedOpen()
		if err != nil {
			return err
		}
		if err := b.set(prefix(countTag(b.unit.Stream), b.unit.Partition), int64Bytes(n+b.pendingDelta)); err != nil {
			return err
		}
	}
	return nil
}

func (b *Batch) afterCommit() {
	s := b.s
	if b.cache != nil && len(b.pendingChanges) > 0 {
		b.cache.apply(b.pendingChanges, s.maxCachedOpen())
	}
	s.mu.Lock()
	if s.owned[b.unit] {
		s.pending[b.unit] += b.pendingDelta
		if b.cache != nil && len(b.pendingChanges) > 0 {
			s.publishOldestLocked(b.unit, b.cache)
		}
	}
	for _, name := range s.opts.Publishers {
		s.depth[name] += b.outboxAdded
	}
	s.mu.Unlock()
	if b.outboxAdded > 0 {
		s.wake()
	}
}

func readInt64(txn *badger.Txn, k []byte) (int64, bool, error) {
	item, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("cannot read key %q: %w", k, err)
	}
	var n int64
	err = item.Value(func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("cannot decode stored value of key %q: %d bytes, expected 8", k, len(v))
		}
		n = int64(binary.BigEndian.Uint64(v))
		return nil
	})
	return n, true, err
}

func int64Bytes(n int64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	return b[:]
}

// RetryStats is the seed's get_retry_stats over finished events.
type RetryStats struct {
	counts map[string]int64 // retry count → events; string keys match the JSON
}

func (r *RetryStats) add(retries int, n int64) {
	if r.counts == nil {
		r.counts = map[string]int64{}
	}
	k := strconv.Itoa(retries)
	r.counts[k] += n
	if r.counts[k] == 0 {
		delete(r.counts, k)
	}
}

// committedOpen is the unit's open count before this batch: the store's
// in-memory mirror for an owned unit, else the stored count.
func (b *Batch) committedOpen() (int64, error) {
	if b.openBaseRead {
		return b.openBase, nil
	}
	s := b.s
	s.mu.Lock()
	n, owned := s.pending[b.unit], s.owned[b.unit]
	s.mu.Unlock()
	if !owned {
		var err error
		if n, _, err = readInt64(b.txn, prefix(countTag(b.unit.Stream), b.unit.Partition)); err != nil {
			return 0, err
		}
	}
	b.openBase, b.openBaseRead = n, true
	return n, nil
}
