package state

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/pipetel/pipetel/schemas"
)

// DefaultMaxScanKeys bounds the keys one list query examines (Options.MaxScanKeys). A filter that keeps
// few of them (status=timed_out walks every failed metric, slower_than
// every duration above the bound) would otherwise walk a whole index in one
// request: past the bound the page ends early, with fewer items than the
// limit and a cursor to continue from the last key examined.
const DefaultMaxScanKeys = 100_000

// ErrBadCursor is returned by the list queries when the cursor was not made
// by a previous page of this store.
var ErrBadCursor = errors.New("invalid cursor")

// EventQuery selects event metrics. The zero value lists every owned event,
// finished ones first, in key order.
type EventQuery struct {
	// Status keeps only metrics with this status; empty keeps all.
	Status schemas.Status
	// SlowerThan keeps only finished metrics whose duration exceeds it;
	// zero means no bound.
	SlowerThan time.Duration
	// Limit is the page size: 0 means schemas.DefaultLimit; at most schemas.MaxLimit.
	Limit int
	// Cursor continues after the previous page (its Next).
	Cursor string
	// EventName and PipelineID keep only metrics with this event name,
	// this pipeline; empty keeps all.
	EventName, PipelineID string
	// Since and Until keep only metrics whose start time is at or after
	// Since and before Until; a zero time is no bound. A metric without a
	// start (a pending end, an orphan) has no start time to compare, so
	// either bound drops it.
	Since, Until time.Time
	// Top, when > 0, answers the Top finished metrics with the longest
	// durations among those the other fields keep, longest first (ties by
	// task id), in one page without a cursor; Limit and Cursor must be
	// unset. When the filters keep fewer than Top of the metrics the scan
	// bound lets it examine, it fails with ErrTopScanBound rather than
	// answer with metrics that may not be the slowest.
	Top int
}

// NetworkQuery selects network metrics like EventQuery; network metrics
// carry no event name or pipeline, and Top orders by latency.
type NetworkQuery struct {
	Status       schemas.Status
	SlowerThan   time.Duration
	Limit        int
	Cursor       string
	Since, Until time.Time
	Top          int
}

// ErrTopScanBound is returned by a Top query whose filters kept fewer
// metrics than asked for among the MaxScanKeys it examined.
var ErrTopScanBound = errors.New("the filters keep too few of the slowest metrics")

// startedIn reports whether start lies in [since, until), zero bounds
// being open.
func startedIn(start *time.Time, since, until time.Time) bool {
	if since.IsZero() && until.IsZero() {
		return true
	}
	return start != nil && !start.Before(since) && (until.IsZero() || start.Before(until))
}

// Event returns the metric of task, finished or pending, from the owned
// partitions.
func (s *Store) Event(taskID string) (schemas.EventMetric, bool, error) {
	var m schemas.EventMetric
	found := false
	err := s.db.View(func(txn *badger.Txn) error {
		for _, p := range s.Owned(Events) {
			b := &Batch{s: s, txn: txn, unit: Unit{Events, p}}
			var err error
			if m, found, err = b.FinishedEvent(taskID); err != nil || found {
				return err
			}
			pe, ok, err := b.PendingEvent(taskID)
			if err != nil {
				return err
			}
			if ok {
				m, found = PendingEventMetric(taskID, pe), true
				return nil
			}
		}
		return nil
	})
	return m, found, err
}

// NetworkOp returns the metric of one network operation.
func (s *Store) NetworkOp(taskID, opID string) (schemas.NetworkMetric, bool, error) {
	var m schemas.NetworkMetric
	found := false
	err := s.db.View(func(txn *badger.Txn) error {
		for _, p := range s.Owned(Network) {
			b := &Batch{s: s, txn: txn, unit: Unit{Network, p}}
			var err error
			if m, found, err = b.FinishedNetwork(taskID, opID); err != nil || found {
				return err
			}
			pn, ok, err := b.PendingNetwork(taskID, opID)
			if err != nil {
				return err
			}
			if ok {
				m, found = PendingNetworkMetric(taskID, opID, pn), true
				return nil
			}
		}
		return nil
	})
	return m, found, err
}

// Events lists event metrics. It stops with ctx's error when ctx ends
// during the scan.
func (s *Store) Events(ctx context.Context, q EventQuery) (schemas.Page[schemas.EventMetric], error) {
	parts := s.Owned(Events)
	var spans []span
	load := func(txn *badger.Txn, k, v []byte) (schemas.EventMetric, bool, error) {
		var m schemas.EventMetric
		return m, true, decodeValue(k, v, &m)
	}
	switch {
	case q.SlowerThan > 0:
		spans = slowerSpans(tagEventDuration, parts, q.SlowerThan)
		load = func(txn *badger.Txn, k, _ []byte) (schemas.EventMetric, bool, error) {
			return getFinished[schemas.EventMetric](txn, tagFinishedEvent, k[:6], k[14:])
		}
	case q.Status == schemas.StatusPending:
		spans = indexSpans(tagPendingEvent, parts, nil)
		load = func(_ *badger.Txn, k, v []byte) (schemas.EventMetric, bool, error) {
			var pe PendingEvent
			err := decodeValue(k, v, &pe)
			return PendingEventMetric(string(k[6:]), pe), true, err
		}
	case q.Status != "" && q.Status != schemas.StatusCompleted:
		spans = indexSpans(tagEventFailed, parts, nil)
		load = func(txn *badger.Txn, k, _ []byte) (schemas.EventMetric, bool, error) {
			return getFinished[schemas.EventMetric](txn, tagFinishedEvent, k[:6], k[6:])
		}
	case q.Status == schemas.StatusCompleted:
		spans = indexSpans(tagFinishedEvent, parts, nil)
	default:
		spans = append(indexSpans(tagFinishedEvent, parts, nil), indexSpans(tagPendingEvent, parts, nil)...)
		finished := load
		load = func(txn *badger.Txn, k, v []byte) (schemas.EventMetric, bool, error) {
			if k[0] == 'p' {
				var pe PendingEvent
				err := decodeValue(k, v, &pe)
				return PendingEventMetric(string(k[6:]), pe), true, err
			}
			return finished(txn, k, v)
		}
	}
	keep := func(m schemas.EventMetric) bool {
		return (q.Status == "" || m.Status == q.Status) && (q.EventName == "" || m.EventName == q.EventName) &&
			(q.PipelineID == "" || m.PipelineID == q.PipelineID) && startedIn(m.StartTime, q.Since, q.Until)
	}
	if q.Top > 0 {
		return topPage(ctx, s, tagEventDuration, tagFinishedEvent, parts, q.SlowerThan, q.Top, keep, schemas.CompareSlowerEvent)
	}
	return scanPage(ctx, s, spans, q.Cursor, q.Limit, load, keep)
}

// NetworkOps lists network metrics like Events.
func (s *Store) NetworkOps(ctx context.Context, q NetworkQuery) (schemas.Page[schemas.NetworkMetric], error) {
	parts := s.Owned(Network)
	var spans []span
	load := func(txn *badger.Txn, k, v []byte) (schemas.NetworkMetric, bool, error) {
		var m schemas.NetworkMetric
		return m, true, decodeValue(k, v, &m)
	}
	pendingLoad := func(_ *badger.Txn, k, v []byte) (schemas.NetworkMetric, bool, error) {
		var pn PendingNetwork
		err := decodeValue(k, v, &pn)
		task, op := splitNetID(k[6:])
		return PendingNetworkMetric(task, op, pn), true, err
	}
	switch {
	case q.SlowerThan > 0:
		spans = slowerSpans(tagNetLatency, parts, q.SlowerThan)
		load = func(txn *badger.Txn, k, _ []byte) (schemas.NetworkMetric, bool, error) {
			return getFinished[schemas.NetworkMetric](txn, tagFinishedNet, k[:6], k[14:])
		}
	case q.Status == schemas.StatusPending:
		spans = indexSpans(tagPendingNet, parts, nil)
		load = pendingLoad
	case q.Status != "" && q.Status != schemas.StatusCompleted:
		spans = indexSpans(tagNetFailed, parts, nil)
		load = func(txn *badger.Txn, k, _ []byte) (schemas.NetworkMetric, bool, error) {
			return getFinished[schemas.NetworkMetric](txn, tagFinishedNet, k[:6], k[6:])
		}
	case q.Status == schemas.StatusCompleted:
		spans = indexSpans(tagFinishedNet, parts, nil)
	default:
		spans = append(indexSpans(tagFinishedNet, parts, nil), indexSpans(tagPendingNet, parts, nil)...)
		finished := load
		load = func(txn *badger.Txn, k, v []byte) (schemas.NetworkMetric, bool, error) {
			if k[0] == 'p' {
				return pendingLoad(txn, k, v)
			}
			return finished(txn, k, v)
		}
	}
	keep := func(m schemas.NetworkMetric) bool {
		return (q.Status == "" || m.Status == q.Status) && startedIn(m.StartTime, q.Since, q.Until)
	}
	if q.Top > 0 {
		return topPage(ctx, s, tagNetLatency, tagFinishedNet, parts, q.SlowerThan, q.Top, keep, schemas.CompareSlowerNetwork)
	}
	return scanPage(ctx, s, spans, q.Cursor, q.Limit, load, keep)
}

// RetryStats sums the retry statistics of the owned event partitions. It
// reads one small value per partition: the statistics are kept up to date as
// events finish and expire.
func (s *Store) RetryStats() (schemas.RetrySummary, error) {
	sum := schemas.RetrySummary{EventsByRetryCount: map[string]int64{}}
	err := s.db.View(func(txn *badger.Txn) error {
		for _, p := range s.Owned(Events) {
			b := &Batch{s: s, txn: txn, unit: Unit{Events, p}}
			if err := b.loadRetryStats(); err != nil {
				return err
			}
			for k, n := range b.retryStats.counts {
				sum.EventsByRetryCount[k] += n
			}
		}
		return nil
	})
	for _, k := range slices.Sorted(maps.Keys(sum.EventsByRetryCount)) {
		retries, err := strconv.ParseInt(k, 10, 64)
		if err != nil {
			return sum, fmt.Errorf("cannot read retry statistics: bad retry count %q", k)
		}
		n := sum.EventsByRetryCount[k]
		sum.TotalRetries += retries * n
		if retries > 0 && n > 0 {
			sum.EventsWithRetries += n
			sum.MaxRetries = max(sum.MaxRetries, retries)
		}
	}
	return sum, err
}

type span struct{ start, end []byte }

// indexSpans returns one span per partition of tag, starting at from within
// each partition.
func indexSpans(tag [2]byte, parts []int32, from []byte) []span {
	spans := make([]span, 0, len(parts))
	for _, p := range parts {
		pre := prefix(tag, p)
		spans = append(spans, span{start: append(append([]byte(nil), pre...), from...), end: prefixEnd(pre)})
	}
	return spans
}

// slowerSpans returns the spans of a duration index above d. Nothing exceeds
// the largest duration, and d+1 would wrap around to the smallest.
func slowerSpans(tag [2]byte, parts []int32, d time.Duration) []span {
	if d == math.MaxInt64 {
		return nil
	}
	return indexSpans(tag, parts, ordered(int64(d)+1))
}

func getFinished[T any](txn *badger.Txn, tag [2]byte, partPrefix, id []byte) (T, bool, error) {
	var m T
	k := append(append([]byte{tag[0], tag[1]}, partPrefix[2:6]...), id...)
	item, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return m, false, nil // index entry without its metric: skip it
	}
	if err != nil {
		return m, false, err
	}
	return m, true, item.Value(func(v []byte) error { return decodeValue(k, v, &m) })
}

func scanPage[T any](ctx context.Context, s *Store, spans []span, cursor string, limit int,
	load func(txn *badger.Txn, k, v []byte) (T, bool, error), keep func(T) bool) (schemas.Page[T], error) {
	if limit <= 0 {
		limit = schemas.DefaultLimit
	}
	limit = min(limit, schemas.MaxLimit)
	var after []byte
	if cursor != "" {
		var err error
		if after, err = base64.RawURLEncoding.DecodeString(cursor); err != nil || len(after) < 6 {
			return schemas.Page[T]{}, fmt.Errorf("cannot continue from cursor %q: %w", cursor, ErrBadCursor)
		}
	}
	page := schemas.Page[T]{Items: []T{}}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false})
		defer it.Close()
		var last []byte
		examined := 0
		for _, sp := range spans {
			start := sp.start
			if after != nil {
				if bytes.Compare(sp.end, after) <= 0 {
					continue
				}
				if bytes.Compare(after, start) >= 0 {
					start = append(append([]byte(nil), after...), 0)
				}
			}
			for it.Seek(start); it.Valid(); it.Next() {
				item := it.Item()
				k := item.Key()
				if bytes.Compare(k, sp.end) >= 0 {
					break
				}
				if len(page.Items) == limit {
					page.Next = base64.RawURLEncoding.EncodeToString(last)
					return nil
				}
				if examined++; examined%1024 == 1 {
					if err := ctx.Err(); err != nil {
						return fmt.Errorf("cannot finish the list query: %w", err)
					}
				}
				if examined > s.maxScanKeys() {
					// Continue after the last key examined, kept or not.
					page.Next = base64.RawURLEncoding.EncodeToString(last)
					return nil
				}
				last = item.KeyCopy(last[:0])
				var m T
				var ok bool
				err := item.Value(func(v []byte) error {
					var err error
					m, ok, err = load(txn, k, v)
					return err
				})
				if err != nil {
					return err
				}
				if ok && keep(m) {
					page.Items = append(page.Items, m)
				}
			}
		}
		return nil
	})
	return page, err
}

// CountFinished counts the finished metrics of stream st in the owned
// partitions. It reads keys only.
func (s *Store) CountFinished(st Stream) (int64, error) {
	tag := tagFinishedEvent
	if st == Network {
		tag = tagFinishedNet
	}
	var n int64
	err := s.db.View(func(txn *badger.Txn) error {
		for _, p := range s.Owned(st) {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix(tag, p)})
			for it.Rewind(); it.Valid(); it.Next() {
				n++
			}
			it.Close()
		}
		return nil
	})
	return n, err
}

func (s *Store) maxScanKeys() int {
	if s.opts.MaxScanKeys > 0 {
		return s.opts.MaxScanKeys
	}
	return DefaultMaxScanKeys
}

// topPage answers a Top query: each partition's duration (latency) index
// is read from its longest entry down, keeping up to n metrics plus those
// that tie the n-th (so that the cut among ties is by task id, as in the
// merged answer, and not by key order), and the partitions' metrics are
// merged longest first. The scan bound counts index entries over all the
// partitions.
func topPage[T any](ctx context.Context, s *Store, indexTag, finishedTag [2]byte, parts []int32, slowerThan time.Duration, n int,
	keep func(T) bool, cmp func(a, b T) int) (schemas.Page[T], error) {
	n = min(n, schemas.MaxLimit)
	all := []T{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Reverse: true})
		defer it.Close()
		examined := 0
		for _, p := range parts {
			pre := prefix(indexTag, p)
			kept, lastDur := 0, int64(0)
			// In reverse, Seek finds the largest key at or before its
			// argument: the partition's longest entry.
			for it.Seek(prefixEnd(pre)); it.ValidForPrefix(pre); it.Next() {
				k := it.Item().Key()
				dur := fromOrdered(k[6:14])
				if (slowerThan > 0 && dur <= int64(slowerThan)) || (kept >= n && dur != lastDur) {
					break
				}
				if examined++; examined%1024 == 1 {
					if err := ctx.Err(); err != nil {
						return fmt.Errorf("cannot finish the top query: %w", err)
					}
				}
				if examined > s.maxScanKeys() {
					return fmt.Errorf("cannot answer top=%d: %w: %d kept of the %d examined, the most one query examines; narrow the filters or list them with a cursor",
						n, ErrTopScanBound, len(all), s.maxScanKeys())
				}
				m, ok, err := getFinished[T](txn, finishedTag, k[:6], k[14:])
				if err != nil {
					return err
				}
				if ok && keep(m) {
					all = append(all, m)
					kept, lastDur = kept+1, dur
				}
			}
		}
		return nil
	})
	if err != nil {
		return schemas.Page[T]{}, err
	}
	slices.SortStableFunc(all, cmp)
	return schemas.Page[T]{Items: all[:min(n, len(all))]}, nil
}

// NetworkOpsOf lists the network operations of one task in the owned
// partitions: finished ones first, then pending ones, each in op id order,
// paged like NetworkOps. It reads the task's key ranges only.
func (s *Store) NetworkOpsOf(ctx context.Context, taskID string, limit int, cursor string) (schemas.Page[schemas.NetworkMetric], error) {
	id := netID(taskID, "")
	parts := s.Owned(Network)
	var spans []span
	for _, tag := range [][2]byte{tagFinishedNet, tagPendingNet} {
		for _, p := range parts {
			start := key(tag, p, id)
			spans = append(spans, span{start: start, end: prefixEnd(start)})
		}
	}
	load := func(_ *badger.Txn, k, v []byte) (schemas.NetworkMetric, bool, error) {
		task, op := splitNetID(k[6:])
		if task != taskID {
			// The range of task "a" also holds task "a\x00…" (a NUL in
			// a task id is written 0 0xff).
			return schemas.NetworkMetric{}, false, nil
		}
		if k[0] == tagPendingNet[0] {
			var pn PendingNetwork
			err := decodeValue(k, v, &pn)
			return PendingNetworkMetric(task, op, pn), true, err
		}
		var m schemas.NetworkMetric
		return m, true, decodeValue(k, v, &m)
	}
	return scanPage(ctx, s, spans, cursor, limit, load, func(schemas.NetworkMetric) bool { return true })
}
