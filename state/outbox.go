package state

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/pipetel/pipetel/schemas"
)

// OutboxItem is one finished metric waiting for delivery to one publisher.
// Exactly one of Event and Network is set.
type OutboxItem struct {
	Key      []byte
	Enqueued time.Time
	Event    *schemas.EventMetric
	Network  *schemas.NetworkMetric
}

type outboxItem struct {
	Enqueued int64                  `json:"t"`
	Event    *schemas.EventMetric   `json:"e,omitempty"`
	Network  *schemas.NetworkMetric `json:"n,omitempty"`
}

func outboxPrefix(publisher string) []byte {
	k := append([]byte{tagOutbox[0], tagOutbox[1]}, publisher...)
	return append(k, 0)
}

func (b *Batch) enqueue(it outboxItem) error {
	pubs := b.s.opts.Publishers
	if len(pubs) == 0 {
		return nil
	}
	it.Enqueued = time.Now().UnixNano()
	data, err := encodeValue(it)
	if err != nil {
		return fmt.Errorf("cannot encode outbox item: %w", err)
	}
	for _, name := range pubs {
		seq, err := b.s.seq.Next()
		if err != nil {
			return fmt.Errorf("cannot number outbox item: %w", err)
		}
		k := binary.BigEndian.AppendUint64(outboxPrefix(name), seq)
		if err := b.txn.Set(k, data); err != nil {
			return err
		}
	}
	b.outboxAdded++
	return nil
}

// ReadOutbox returns up to max of the oldest items queued for publisher.
func (s *Store) ReadOutbox(publisher string, max int) ([]OutboxItem, error) {
	return s.ReadOutboxBytes(publisher, max, 0)
}

// ReadOutboxBytes is ReadOutbox that also stops once the items read hold
// maxBytes of stored values (0: no bound); it returns at least one item
// when any is queued, however large.
func (s *Store) ReadOutboxBytes(publisher string, max, maxBytes int) ([]OutboxItem, error) {
	var items []OutboxItem
	err := s.db.View(func(txn *badger.Txn) error {
		pre := outboxPrefix(publisher)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pre, PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		size := 0
		for it.Rewind(); it.Valid() && len(items) < max && (maxBytes <= 0 || size < maxBytes); it.Next() {
			size += int(it.Item().ValueSize())
			k := it.Item().KeyCopy(nil)
			var raw outboxItem
			if err := it.Item().Value(func(v []byte) error { return decodeValue(k, v, &raw) }); err != nil {
				return err
			}
			items = append(items, OutboxItem{Key: k, Enqueued: time.Unix(0, raw.Enqueued), Event: raw.Event, Network: raw.Network})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot read outbox %q: %w", publisher, err)
	}
	return items, nil
}

// AckOutbox removes delivered (or dead-lettered) items from publisher's outbox.
func (s *Store) AckOutbox(publisher string, items []OutboxItem) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, it := range items {
		if err := wb.Delete(it.Key); err != nil {
			return fmt.Errorf("cannot acknowledge outbox %q: %w", publisher, err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("cannot acknowledge outbox %q: %w", publisher, err)
	}
	s.mu.Lock()
	s.depth[publisher] -= int64(len(items))
	s.mu.Unlock()
	return nil
}

// OutboxDepth reports how many items wait for publisher.
func (s *Store) OutboxDepth(publisher string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.depth[publisher]
}

// MaxOutboxDepth reports the deepest outbox, for backpressure.
func (s *Store) MaxOutboxDepth() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var m int64
	for _, d := range s.depth {
		m = max(m, d)
	}
	return m
}

// OutboxSignal returns a channel that receives when items were added to
// publisher's outbox. It holds at most one pending signal.
func (s *Store) OutboxSignal(publisher string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.notify[publisher]
}

func (s *Store) wake() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.notify {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (s *Store) countOutbox(publisher string) (int64, error) {
	var n int64
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: outboxPrefix(publisher)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("cannot count outbox %q: %w", publisher, err)
	}
	return n, nil
}
