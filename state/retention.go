package state

import (
	"context"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/pipetel/pipetel/schemas"
)

// maxExpiredPerTxn bounds one retention transaction, well under Badger's
// transaction size limit.
const maxExpiredPerTxn = 500

func expiryTime(end, start *time.Time) int64 {
	switch {
	case end != nil:
		return end.UnixNano()
	case start != nil:
		return start.UnixNano()
	}
	return 0
}

// ExpireFinished deletes the finished metrics of u whose end time is before
// before, with their indexes and their share of the retry statistics. It
// returns how many metrics it removed. Call it from the unit's writer.
func (s *Store) ExpireFinished(ctx context.Context, u Unit, before time.Time) (int, error) {
	total := 0
	for {
		n, more := 0, false
		err := s.Update(ctx, u, func(b *Batch) error {
			n = 0
			more = false
			expTag, finTag := tagEventExpiry, tagFinishedEvent
			if u.Stream == Network {
				expTag, finTag = tagNetExpiry, tagFinishedNet
			}
			pre := prefix(expTag, u.Partition)
			limit := append(append([]byte(nil), pre...), ordered(before.UnixNano())...)
			it := b.txn.NewIterator(badger.IteratorOptions{Prefix: pre})
			var keys [][]byte
			for it.Rewind(); it.Valid() && len(keys) < maxExpiredPerTxn; it.Next() {
				k := it.Item().KeyCopy(nil)
				if string(k) >= string(limit) {
					break
				}
				keys = append(keys, k)
			}
			it.Close()
			for _, xk := range keys {
				id := xk[len(pre)+8:]
				if err := b.del(xk); err != nil {
					return err
				}
				if err := b.deleteFinished(finTag, id); err != nil {
					return err
				}
				n++
			}
			if len(keys) == maxExpiredPerTxn {
				more = true // per-metric keys of earlier versions first
				return nil
			}
			m, rest, err := b.expireBuckets(before.UnixNano(), maxExpiredPerTxn-n)
			n, more = n+m, rest
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
		if !more {
			return total, nil
		}
	}
}

func (b *Batch) deleteFinished(finTag [2]byte, id []byte) error {
	p := b.unit.Partition
	fk := key(finTag, p, id)
	if finTag == tagFinishedEvent {
		var m schemas.EventMetric
		found, err := b.get(fk, &m)
		if err != nil || !found {
			return err
		}
		for _, k := range eventIndexKeys(p, m) {
			if err := b.del(k); err != nil {
				return err
			}
		}
		if err := b.loadRetryStats(); err != nil {
			return err
		}
		b.retryStats.add(m.RetryCount, -1)
		b.retryDirty = true
		return b.del(fk)
	}
	var m schemas.NetworkMetric
	found, err := b.get(fk, &m)
	if err != nil || !found {
		return err
	}
	for _, k := range networkIndexKeys(p, m) {
		if err := b.del(k); err != nil {
			return err
		}
	}
	return b.del(fk)
}
