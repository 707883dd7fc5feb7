package state

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/pipetel/pipetel/schemas"
)

func TestExpiryBucketRoundTrip(t *testing.T) {
	f := func(entries []expiryEntry) {
		t.Helper()
		got, err := decodeExpiryBucket(encodeExpiryBucket(entries))
		if err != nil || fmt.Sprint(got) != fmt.Sprint(entries) {
			t.Errorf("round trip of %v: %v (%v)", entries, got, err)
		}
	}
	f(nil)
	f([]expiryEntry{{at: -5, id: ""}})
	f([]expiryEntry{{at: 1, id: "a"}, {at: 1, id: "b"}, {at: 1 << 62, id: "t\x00op"}})

	bad := func(v []byte, want string) {
		t.Helper()
		_, err := decodeExpiryBucket(v)
		if !errors.Is(err, errBadBucket) || err.Error() != want {
			t.Errorf("decode %q: %v, want %q", v, err, want)
		}
	}
	bad(nil, "malformed expiry bucket: version byte [], expected 1")
	bad([]byte{2, 0}, "malformed expiry bucket: version byte [2], expected 1")
	bad([]byte{1, 9, 0}, "malformed expiry bucket: bad entry count")
	bad([]byte{1, 1, 2, 5, 'a'}, "malformed expiry bucket: entry 0: bad id length")
	bad([]byte{1, 2, 2, 1, 'b', 0, 1, 'a'}, "malformed expiry bucket: entry 1 out of order")
	bad([]byte{1, 0, 7}, "malformed expiry bucket: 1 trailing bytes")
}

func FuzzDecodeExpiryBucket(f *testing.F) {
	f.Add(encodeExpiryBucket([]expiryEntry{{at: 3, id: "x"}, {at: 9, id: "y"}}))
	f.Add([]byte{1, 0})
	f.Add([]byte{1, 1, 0x80})
	f.Fuzz(func(t *testing.T, v []byte) {
		entries, err := decodeExpiryBucket(v)
		if err != nil {
			return
		}
		// What decodes encodes to bytes that decode the same (not
		// always to the same bytes: a varint may be written longer).
		again, err := decodeExpiryBucket(encodeExpiryBucket(entries))
		if err != nil || fmt.Sprint(again) != fmt.Sprint(entries) {
			t.Fatalf("decoded %v from %x, which round-trips to %v (%v)", entries, v, again, err)
		}
	})
}

// TestRetentionSweepsBuckets: the sweep removes exactly the metrics that
// ended before the cutoff, from per-metric keys of earlier versions and
// from buckets, writes a partly expired bucket back under its new earliest
// entry, and stops at its limit.
func TestRetentionSweepsBuckets(t *testing.T) {
	s, err := Open(Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	u := Unit{Stream: Events, Partition: 3}
	base := time.Now().Truncate(time.Second)
	at := func(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }
	metric := func(id string, end int) schemas.EventMetric {
		start, e := at(end-1), at(end)
		d := 1.0
		return schemas.EventMetric{TaskID: id, StartTime: &start, EndTime: &e, DurationSeconds: &d, Status: schemas.StatusCompleted}
	}
	finish := func(ms ...schemas.EventMetric) {
		t.Helper()
		err := s.Update(ctx, u, func(b *Batch) error {
			for _, m := range ms {
				if err := b.FinishEvent(m); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	finish(metric("t1", 10), metric("t2", 11), metric("t3", 12), metric("t4", 13), metric("t5", 14))
	finish(metric("t6", 11), metric("t7", 20), metric("t8", 21))
	// A metric of an earlier version: its expiry is a key of its own.
	old := metric("t9", 5)
	err = s.Update(ctx, u, func(b *Batch) error {
		if err := b.put(key(tagFinishedEvent, u.Partition, []byte("t9")), old); err != nil {
			return err
		}
		return b.set(key(tagEventExpiry, u.Partition, ordered(old.EndTime.UnixNano()), []byte("t9")), nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	sec := func(ns int64) int { return int(time.Duration(ns-base.UnixNano()) / time.Second) }
	layout := func() string {
		t.Helper()
		var out []string
		err := s.db.View(func(txn *badger.Txn) error {
			for _, tag := range [][2]byte{tagEventExpiry, tagEventExpiryBucket} {
				pre := prefix(tag, u.Partition)
				it := txn.NewIterator(badger.IteratorOptions{Prefix: pre, PrefetchValues: true})
				for it.Rewind(); it.Valid(); it.Next() {
					k := it.Item().Key()
					first := fmt.Sprintf("%s %d:%s", k[:2], sec(fromOrdered(k[6:14])), k[14:])
					v, _ := it.Item().ValueCopy(nil)
					if tag == tagEventExpiry {
						out = append(out, first)
						continue
					}
					entries, err := decodeExpiryBucket(v)
					if err != nil {
						it.Close()
						return err
					}
					var ids []string
					for _, e := range entries {
						ids = append(ids, fmt.Sprintf("%d:%s", sec(e.at), e.id))
					}
					out = append(out, fmt.Sprint(first, " ", ids))
				}
				it.Close()
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(out)
	}
	f := func(got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	}
	f(layout(), "[xr 5:t9 xb 10:t1 [10:t1 11:t2 12:t3 13:t4 14:t5] xb 11:t6 [11:t6 20:t7 21:t8]]")

	// A limit of 2 stops inside the first bucket and writes its rest back.
	var n int
	var more bool
	err = s.Update(ctx, u, func(b *Batch) error {
		var err error
		n, more, err = b.expireBuckets(at(12).UnixNano(), 2)
		return err
	})
	if err != nil || n != 2 || !more {
		t.Fatalf("expireBuckets(limit 2): %d, more %v (%v), want 2, more", n, more, err)
	}
	f(layout(), "[xr 5:t9 xb 11:t6 [11:t6 20:t7 21:t8] xb 12:t3 [12:t3 13:t4 14:t5]]")

	got, err := s.ExpireFinished(ctx, u, at(12))
	if err != nil || got != 2 {
		t.Fatalf("ExpireFinished: %d (%v), want 2 (t9 and t6)", got, err)
	}
	f(layout(), "[xb 12:t3 [12:t3 13:t4 14:t5] xb 20:t7 [20:t7 21:t8]]")
	for id, want := range map[string]bool{"t1": false, "t2": false, "t3": true, "t6": false, "t7": true, "t9": false} {
		err := s.Update(ctx, u, func(b *Batch) error {
			found, err := b.HasFinishedEvent(id)
			if err == nil && found != want {
				err = fmt.Errorf("%s finished %v, want %v", id, found, want)
			}
			return err
		})
		if err != nil {
			t.Error(err)
		}
	}
	if got, err := s.ExpireFinished(ctx, u, at(100)); err != nil || got != 5 {
		t.Fatalf("ExpireFinished of the rest: %d (%v), want 5", got, err)
	}
	f(layout(), "[]")
}
