package state

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/pipetel/pipetel/schemas"
)

// dumpUnit is every key and value of u's state.
func dumpUnit(t *testing.T, s *Store, u Unit) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := s.db.View(func(txn *badger.Txn) error {
		for _, pre := range unitPrefixes(u) {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: pre, PrefetchValues: true})
			for it.Rewind(); it.Valid(); it.Next() {
				v, err := it.Item().ValueCopy(nil)
				if err != nil {
					it.Close()
					return err
				}
				k := it.Item().KeyCopy(nil)
				switch tag := [2]byte{k[0], k[1]}; tag {
				case tagEventExpiryBucket, tagNetExpiryBucket:
					// A bucket is its entries, each the meaning of one
					// per-metric expiry key.
					entries, err := decodeExpiryBucket(v)
					if err != nil {
						it.Close()
						return err
					}
					legacy := tagEventExpiry
					if tag == tagNetExpiryBucket {
						legacy = tagNetExpiry
					}
					for _, e := range entries {
						out[string(key(legacy, u.Partition, ordered(e.at), []byte(e.id)))] = ""
					}
				case tagEventDeadlineExact, tagNetDeadlineExact:
					// Local bookkeeping of where the deadline index is.
				default:
					out[string(k)] = string(v)
				}
			}
			it.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRestoreRebuildsIndexes: the changelog carries no derived index key,
// and a unit restored from it holds exactly the keys and values of the unit
// that wrote it, indexes included (a batch's expiry bucket counted as the
// per-metric expiry keys a restore writes).
func TestRestoreRebuildsIndexes(t *testing.T) {
	for _, u := range []Unit{{Events, 2}, {Network, 2}} {
		t.Run(u.Stream.String(), func(t *testing.T) {
			log := &keyLog{}
			a, err := Open(Options{NoSync: true, Changelog: log, MaxCachedOpen: 2}) // spills: both write paths
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if err := a.Own(u); err != nil {
				t.Fatal(err)
			}
			base := time.Unix(1_795_000_000, 0).UTC()
			at := func(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }
			ctx := context.Background()
			for batch := range 4 {
				err := a.Update(ctx, u, func(b *Batch) error {
					for i := range 5 {
						n := batch*5 + i
						id := fmt.Sprintf("t%02d", n)
						start, end := at(n), at(n+3)
						d := float64(3 + n%2)
						status := schemas.StatusCompleted
						if n%3 == 0 {
							status = schemas.StatusFailed
						}
						var err error
						switch {
						case n%4 == 3 && u.Stream == Network:
							err = b.PutPendingNetwork(id, "o", PendingNetwork{HasStart: true, StartTime: start, FirstSeen: start, Deadline: int64(1000 + n)}, true)
						case n%4 == 3:
							err = b.PutPendingEvent(id, PendingEvent{HasStart: true, StartTime: start, FirstSeen: start, Deadline: int64(1000 + n)}, true)
						case u.Stream == Network:
							err = b.FinishNetwork(schemas.NetworkMetric{TaskID: id, OpID: "o", StartTime: &start, EndTime: &end, LatencySeconds: &d, Status: status})
						default:
							err = b.FinishEvent(schemas.EventMetric{TaskID: id, StartTime: &start, EndTime: &end, DurationSeconds: &d, Status: status})
						}
						if err != nil {
							return err
						}
					}
					// Close an open entry of the batch before.
					if batch > 0 {
						prev := fmt.Sprintf("t%02d", batch*5-2)
						if u.Stream == Network {
							return b.DeletePendingNetwork(prev, "o")
						}
						return b.DeletePendingEvent(prev)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			if n, err := a.ExpireFinished(ctx, u, at(6)); err != nil || n == 0 {
				t.Fatalf("retention removed %d (%v), want some", n, err)
			}
			records := 0
			for _, batch := range log.batches {
				for _, c := range batch {
					records++
					if isDerived(c.Key) {
						t.Fatalf("derived index key %q in the changelog", c.Key)
					}
				}
			}
			b, err := Open(Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			r, err := b.BeginRestore(u)
			if err != nil {
				t.Fatal(err)
			}
			for _, batch := range log.batches {
				for _, c := range batch {
					if err := r.Apply(c); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := r.Finish(int64(len(log.batches) - 1)); err != nil {
				t.Fatal(err)
			}
			want, got := dumpUnit(t, a, u), dumpUnit(t, b, u)
			derived := 0
			for k, v := range want {
				if isDerived([]byte(k)) {
					derived++
				}
				if gv, ok := got[k]; !ok || gv != v {
					t.Errorf("key %q: restored %q (present %v), want %q", k, gv, ok, v)
				}
			}
			for k := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("restored key %q that the writer does not hold", k)
				}
			}
			if derived == 0 {
				t.Fatal("the writer holds no index key: the test checks nothing")
			}
			t.Logf("%d changelog records, %d keys restored, %d of them derived", records, len(got), derived)
		})
	}
}

// TestConflictRetryStartsClean: an Update whose commit conflicts is retried
// with an empty batch (its scratch storage emptied between attempts), and
// logs exactly the changes of the attempt that committed.
func TestConflictRetryStartsClean(t *testing.T) {
	log := &keyLog{}
	s, err := Open(Options{NoSync: true, Changelog: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u := Unit{Stream: Events, Partition: 4}
	ctx := context.Background()
	attempts := 0
	err = s.Update(ctx, u, func(b *Batch) error {
		attempts++
		if _, _, err := b.Offset(); err != nil { // read: a later write of it by another txn conflicts
			return err
		}
		if attempts == 1 {
			if err := s.Update(ctx, u, func(b2 *Batch) error { return b2.SetOffset(7) }); err != nil {
				return err
			}
		}
		if err := b.SetStreamTime(int64(100 * attempts)); err != nil {
			return err
		}
		return b.SetNewestRecordTime(5)
	})
	if err != nil {
		t.Fatal(err)
	}
	if attempts != 2 {
		t.Fatalf("%d attempts, want 2 (one conflict)", attempts)
	}
	var got []string
	for _, batch := range log.batches {
		var keys []string
		for _, c := range batch {
			keys = append(keys, fmt.Sprintf("%s=%x", c.Key[:2], c.Value))
		}
		got = append(got, fmt.Sprint(keys))
	}
	want := []string{"[of=0000000000000007]", "[tm=00000000000000c8 rt=0000000000000005]"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("logged batches %v, want %v", got, want)
	}
}
