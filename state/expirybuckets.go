package state

import (
	"encoding/binary"

	"errors"
	"fmt"
	"github.com/dgraph-io/badger/v4"
	"slices"
	"strings"
)

// The retention sweep finds finished metrics by end time. Instead of one
// index key per metric, each batch writes one bucket key holding the end
// times and ids of the metrics it finished, keyed by the earliest of them:
// a batch's metrics end close together, so one key per batch orders them
// well enough, and the sweep takes a bucket's expired prefix and writes
// the rest back under its new earliest entry. That is one Badger write per
// batch instead of one per metric (and one delete fewer per metric when
// the sweep removes it). Per-metric keys of earlier versions (tagEventExpiry,
// tagNetExpiry) are still swept; a restore writes those, since it does not
// know which metrics ended together.
var (
	tagEventExpiryBucket = [2]byte{'x', 'b'} // + p + ordered earliest end + its id → bucket
	tagNetExpiryBucket   = [2]byte{'y', 'b'} // + p + ordered earliest end + its task \x00 op → bucket
)

// expiryBucketVersion is the first byte of an encoded bucket.
const expiryBucketVersion = 1

// expiryEntry is one finished metric in a bucket: its expiry time (end,
// else start) and its id (task id, or netID for an operation).
type expiryEntry struct {
	at int64
	id string
}

func expiryBucketTag(s Stream) [2]byte {
	if s == Network {
		return tagNetExpiryBucket
	}
	return tagEventExpiryBucket
}

func compareExpiry(a, b expiryEntry) int {
	switch {
	case a.at < b.at:
		return -1
	case a.at > b.at:
		return 1
	}
	return strings.Compare(a.id, b.id)
}

// bucketKey is the key of a bucket whose earliest entry is first.
func bucketKey(tag [2]byte, p int32, first expiryEntry) []byte {
	return key(tag, p, ordered(first.at), []byte(first.id))
}

// encodeExpiryBucket encodes sorted entries: the version, their count,
// then per entry the zigzag delta of its time to the previous one, the
// id's length and the id.
func encodeExpiryBucket(entries []expiryEntry) []byte {
	size := 1 + binary.MaxVarintLen64
	for _, e := range entries {
		size += 2*binary.MaxVarintLen64 + len(e.id)
	}
	out := make([]byte, 0, size)
	out = append(out, expiryBucketVersion)
	out = binary.AppendUvarint(out, uint64(len(entries)))
	var prev int64
	for _, e := range entries {
		out = binary.AppendVarint(out, e.at-prev)
		prev = e.at
		out = binary.AppendUvarint(out, uint64(len(e.id)))
		out = append(out, e.id...)
	}
	return out
}

// errBadBucket is wrapped by decodeExpiryBucket's errors.
var errBadBucket = errors.New("malformed expiry bucket")

// decodeExpiryBucket is the inverse of encodeExpiryBucket; it checks every
// length against what is left, and that the entries are in order.
func decodeExpiryBucket(v []byte) ([]expiryEntry, error) {
	if len(v) == 0 || v[0] != expiryBucketVersion {
		return nil, fmt.Errorf("%w: version byte %v, expected %d", errBadBucket, v[:min(len(v), 1)], expiryBucketVersion)
	}
	rest := v[1:]
	n, w := binary.Uvarint(rest)
	if w <= 0 || n > uint64(len(rest)) { // every entry takes at least two bytes
		return nil, fmt.Errorf("%w: bad entry count", errBadBucket)
	}
	rest = rest[w:]
	entries := make([]expiryEntry, 0, n)
	var prev int64
	for i := uint64(0); i < n; i++ {
		d, w := binary.Varint(rest)
		if w <= 0 {
			return nil, fmt.Errorf("%w: entry %d: bad time", errBadBucket, i)
		}
		rest = rest[w:]
		l, w := binary.Uvarint(rest)
		if w <= 0 || l > uint64(len(rest)-w) {
			return nil, fmt.Errorf("%w: entry %d: bad id length", errBadBucket, i)
		}
		rest = rest[w:]
		e := expiryEntry{at: prev + d, id: string(rest[:l])}
		rest = rest[l:]
		if i > 0 && compareExpiry(entries[i-1], e) >= 0 {
			return nil, fmt.Errorf("%w: entry %d out of order", errBadBucket, i)
		}
		entries = append(entries, e)
		prev = e.at
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errBadBucket, len(rest))
	}
	return entries, nil
}

// addExpiry queues a finished metric for this batch's bucket.
func (b *Batch) addExpiry(at int64, id []byte) {
	b.expiries = append(b.expiries, expiryEntry{at: at, id: string(id)})
}

// writeExpiryBucket writes the batch's bucket, if it finished anything.
func (b *Batch) writeExpiryBucket() error {
	if len(b.expiries) == 0 {
		return nil
	}
	slices.SortFunc(b.expiries, compareExpiry)
	return b.set(bucketKey(expiryBucketTag(b.unit.Stream), b.unit.Partition, b.expiries[0]), encodeExpiryBucket(b.expiries))
}

// expireBuckets deletes up to limit finished metrics that expire before
// cutoff, earliest buckets first, writing a partly expired bucket back
// under its new earliest entry. more says the limit stopped it: it
// collects buckets until they hold limit expired entries.
func (b *Batch) expireBuckets(cutoff int64, limit int) (n int, more bool, err error) {
	tag, finTag := expiryBucketTag(b.unit.Stream), tagFinishedEvent
	if b.unit.Stream == Network {
		finTag = tagFinishedNet
	}
	type bucket struct {
		key     []byte
		entries []expiryEntry
	}
	var due []bucket
	seen := 0
	pre := prefix(tag, b.unit.Partition)
	it := b.txn.NewIterator(badger.IteratorOptions{Prefix: pre, PrefetchValues: true})
	for it.Rewind(); it.Valid() && seen < limit; it.Next() {
		k := it.Item().Key()
		if fromOrdered(k[len(pre):len(pre)+8]) >= cutoff {
			break
		}
		var entries []expiryEntry
		err := it.Item().Value(func(v []byte) error {
			var err error
			entries, err = decodeExpiryBucket(v)
			return err
		})
		if err != nil {
			it.Close()
			return 0, false, fmt.Errorf("cannot decode expiry bucket %q: %w", k, err)
		}
		due = append(due, bucket{key: it.Item().KeyCopy(nil), entries: entries})
		for _, e := range entries {
			if e.at < cutoff {
				seen++
			}
		}
	}
	it.Close()
	for _, bk := range due {
		i := 0
		for i < len(bk.entries) && bk.entries[i].at < cutoff && n < limit {
			if err := b.deleteFinished(finTag, []byte(bk.entries[i].id)); err != nil {
				return n, false, err
			}
			i++
			n++
		}
		if err := b.del(bk.key); err != nil {
			return n, false, err
		}
		if rest := bk.entries[i:]; len(rest) > 0 {
			if err := b.set(bucketKey(tag, b.unit.Partition, rest[0]), encodeExpiryBucket(rest)); err != nil {
				return n, false, err
			}
		}
	}
	return n, n >= limit, nil
}
