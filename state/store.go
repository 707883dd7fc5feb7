package state

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// DefaultRetention is how long finished metrics stay queryable.
const DefaultRetention = 24 * time.Hour

// ErrClosed is returned by Update after Close.
var ErrClosed = errors.New("state store is closed")

// ErrTooBig is returned (wrapped) by Update when the transaction holds more
// than Badger takes in one commit; nothing was written. Split the work.
var ErrTooBig = errors.New("state transaction too big")

// Options configure a Store.
type Options struct {
	// Dir holds the Badger files. Empty means in memory (tests only).
	Dir string
	// Retention is how long a finished metric stays, counted from its end
	// time. Zero means DefaultRetention.
	Retention time.Duration
	// Publishers names one outbox per publisher: every finished metric is
	// queued once in each.
	Publishers []string
	// NoSync turns off fsync on commit. Off by default: a batch is synced,
	// which costs little because transactions hold about a thousand
	// operations.
	NoSync bool
	// DurationBuckets and LatencyBuckets are the upper bounds (seconds) of
	// the event duration and network latency histograms kept in each unit's
	// aggregates. Defaults DefaultDurationBuckets and DefaultLatencyBuckets.
	DurationBuckets []float64
	LatencyBuckets  []float64
	// MaxChangeBytes bounds the changes of one transaction when a Changelog
	// is set: a larger transaction fails with ErrTooBig before it commits,
	// so that its changelog append fits one record batch. Default 8 MiB.
	MaxChangeBytes int
	// Changelog, when set, receives every committed change of every unit,
	// so that a unit's state can be rebuilt on another instance.
	Changelog Changelog
	// MaxScanKeys bounds the keys one list query examines before it ends
	// its page early with a cursor. Default DefaultMaxScanKeys.
	MaxScanKeys int
	// Logger receives Badger's warnings and errors. Nil discards them.
	Logger *slog.Logger
	// MaxCachedOpen is how many open entries per owned unit are kept
	// decoded in memory for the join (DefaultMaxCachedOpen when 0; negative
	// turns the cache off). A unit with more reads them from Badger until
	// it is back under half this.
	MaxCachedOpen int
	// MaxLabelValues caps the distinct event names (network: operations)
	// with series of their own in each unit's aggregates; the metrics of
	// later names are counted under OtherLabelValue. DefaultMaxLabelValues
	// when 0 or less.
	MaxLabelValues int
}

// Store is the Badger-backed state of every unit this instance holds.
//
// Lock order: Store.mu is a leaf lock; it is never held while a Badger
// transaction commits or while calling out of the package.
type Store struct {
	db   *badger.DB
	opts Options
	seq  *badger.Sequence

	durationBounds, latencyBounds []float64

	scratch sync.Pool // *batchScratch: a batch's maps and slices, reused

	mu      sync.Mutex
	owned   map[Unit]bool
	pending map[Unit]int64 // open tasks per unit, mirrors the ce/cn keys
	caches  map[Unit]*openCache
	// oldestMem: the oldest cached start (Unix ns, 0 none) of each unit
	// whose cache is complete, published by its writer (oldest.go).
	oldestMem map[Unit]int64

	depth    map[string]int64 // outbox items per publisher
	notify   map[string]chan struct{}
	isClosed bool
}

// Open opens (or creates) the store in opts.Dir.
func Open(opts Options) (*Store, error) {
	if opts.Retention == 0 {
		opts.Retention = DefaultRetention
	}
	// Every value stays in the LSM tree (Badger's largest threshold): the
	// aggregate series (rewritten by each batch that touches them) and
	// metrics with long errors would otherwise fill a value log that only
	// grows, and in memory there is no value log at all.
	valueThreshold := int64(1 << 20)
	bo := badger.DefaultOptions(opts.Dir).
		WithInMemory(opts.Dir == "").
		WithSyncWrites(!opts.NoSync).
		// Smaller memtables and caches: measured 61k joined tasks/s at ~194 MB
		// RSS instead of ~730 MB with the defaults (shared/field-notes.md).
		// pipetel bench --tasks 1000000, one session: 32 MiB memtables
		// 118.6k records/s at 1 099 MiB peak, 16 MiB 118.6k at 810 MiB, 8 MiB
		// 100.1k at 823 MiB.
		WithMemTableSize(16 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBlockCacheSize(16 << 20).
		WithIndexCacheSize(16 << 20).
		WithValueThreshold(valueThreshold).
		WithLogger(badgerLogger{opts.Logger})
	if opts.Dir != "" {
		if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
			return nil, fmt.Errorf("cannot create state directory %q: %w", opts.Dir, err)
		}
	}
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("cannot open state store %q: %w", opts.Dir, err)
	}
	seq, err := db.GetSequence([]byte("sq/outbox"), 1000)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("cannot open outbox sequence: %w", err)
	}
	s := &Store{
		db: db, opts: opts, seq: seq,
		owned:     map[Unit]bool{},
		pending:   map[Unit]int64{},
		caches:    map[Unit]*openCache{},
		oldestMem: map[Unit]int64{},
		depth:     map[string]int64{},
		notify:    map[string]chan struct{}{},

		durationBounds: orDefault(opts.DurationBuckets, DefaultDurationBuckets),
		latencyBounds:  orDefault(opts.LatencyBuckets, DefaultLatencyBuckets),
	}
	s.scratch.New = func() any { return &batchScratch{} }
	for _, name := range opts.Publishers {
		n, err := s.countOutbox(name)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.depth[name] = n
		s.notify[name] = make(chan struct{}, 1)
	}
	return s, nil
}

// Close releases the store. Pending writes are already committed: every
// Update commits before it returns.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.isClosed {
		s.mu.Unlock()
		return nil
	}
	s.isClosed = true
	s.mu.Unlock()
	return errors.Join(s.seq.Release(), s.db.Close())
}

// Retention reports how long finished metrics are kept.
func (s *Store) Retention() time.Duration { return s.opts.Retention }

// Own marks u as held by this instance: queries include it from now on. It
// loads the unit's open-task count and, up to MaxCachedOpen, its open
// entries.
func (s *Store) Own(u Unit) error {
	n, err := s.readCount(u)
	if err != nil {
		return err
	}
	var c *openCache
	if s.maxCachedOpen() > 0 {
		if c, err = s.loadOpenCache(u, n); err != nil {
			return fmt.Errorf("cannot load open entries of %s partition %d: %w", u.Stream, u.Partition, err)
		}
	}
	if c != nil && c.complete {
		err = s.dropDeadlines(u)
	} else {
		err = s.ensureDeadlines(u)
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.owned[u] = true
	s.pending[u] = n
	if c != nil {
		s.caches[u] = c
	}
	s.publishOldestLocked(u, c)
	s.mu.Unlock()
	return nil
}

// Disown removes u from queries; its data stays on disk for a later return.
func (s *Store) Disown(u Unit) {
	s.mu.Lock()
	delete(s.owned, u)
	delete(s.pending, u)
	delete(s.caches, u)
	delete(s.oldestMem, u)
	s.mu.Unlock()
}

// Owned lists the units of stream st this instance holds, in partition order.
func (s *Store) Owned(st Stream) []int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ps []int32
	for u := range s.owned {
		if u.Stream == st {
			ps = append(ps, u.Partition)
		}
	}
	slices.Sort(ps)
	return ps
}

// OpenTasks reports the number of pending tasks (or network operations) in
// the owned units of stream st.
func (s *Store) OpenTasks(st Stream) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for u, c := range s.pending {
		if u.Stream == st {
			n += c
		}
	}
	return n
}

// LastOffset returns the offset of the last input record applied to u, and
// false when nothing was ever applied.
func (s *Store) LastOffset(u Unit) (int64, bool, error) {
	var off int64
	var found bool
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		off, found, err = readInt64(txn, offsetKey(u))
		return err
	})
	return off, found, err
}

func (s *Store) readCount(u Unit) (int64, error) {
	return s.readUnitInt64(countTag(u.Stream), u)
}

// Update runs fn in one transaction on unit u and commits it. When Badger
// reports a conflict, the transaction is retried with a fresh Batch, so fn
// must not keep side effects from an earlier attempt.
func (s *Store) Update(ctx context.Context, u Unit, fn func(*Batch) error) error {
	sc := s.scratch.Get().(*batchScratch)
	defer s.scratch.Put(sc)
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.mu.Lock()
		closed := s.isClosed
		s.mu.Unlock()
		if closed {
			return ErrClosed
		}
		err := s.attempt(ctx, u, fn, sc)
		if errors.Is(err, badger.ErrConflict) {
			if attempt < 10 {
				continue
			}
			return fmt.Errorf("cannot update state of %s partition %d: %w", u.Stream, u.Partition, err)
		}
		return err
	}
}

// attempt is one try of Update, with the scratch storage lent to its Batch
// for the duration of the try.
func (s *Store) attempt(ctx context.Context, u Unit, fn func(*Batch) error, sc *batchScratch) error {
	cache, err := s.cacheOf(u)
	if err != nil {
		return fmt.Errorf("cannot update state of %s partition %d: %w", u.Stream, u.Partition, err)
	}
	b := &Batch{s: s, unit: u, txn: s.db.NewTransaction(true), cache: cache}
	sc.lend(b)
	defer sc.take(b)
	defer func() {
		if b.deadlinesTouched && !b.committed {
			cache.deadlinesDirty = true // undo this batch's pushes and pops
		}
	}()
	err = fn(b)
	if err == nil {
		err = b.flush()
	}
	if err == nil && s.opts.Changelog != nil && b.changeBytes > s.maxChangeBytes() {
		err = fmt.Errorf("%w: %d bytes of changes, at most %d in one changelog append", ErrTooBig, b.changeBytes, s.maxChangeBytes())
	}
	if err == nil {
		err = b.unmarkForLog()
	}
	if err == nil {
		err = b.txn.Commit()
	} else {
		b.txn.Discard()
	}
	if errors.Is(err, badger.ErrConflict) {
		return err
	}
	if errors.Is(err, badger.ErrTxnTooBig) {
		err = fmt.Errorf("%w: %w", ErrTooBig, err)
	}
	if err != nil {
		return fmt.Errorf("cannot update state of %s partition %d: %w", u.Stream, u.Partition, err)
	}
	b.committed = true
	b.afterCommit()
	if err := b.logChanges(ctx); err != nil {
		return fmt.Errorf("cannot log state of %s partition %d: %w", u.Stream, u.Partition, err)
	}
	return nil
}

type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	if b.l != nil {
		b.l.Error(fmt.Sprintf(f, a...), "component", "badger")
	}
}
func (b badgerLogger) Warningf(f string, a ...any) {
	if b.l != nil {
		b.l.Warn(fmt.Sprintf(f, a...), "component", "badger")
	}
}
func (badgerLogger) Infof(string, ...any)  {}
func (badgerLogger) Debugf(string, ...any) {}

// Changelog returns the changelog the store was opened with, or nil.
func (s *Store) Changelog() Changelog { return s.opts.Changelog }

func orDefault(b, def []float64) []float64 {
	if len(b) == 0 {
		return slices.Clone(def)
	}
	return slices.Clone(b)
}

func (s *Store) maxChangeBytes() int {
	if s.opts.MaxChangeBytes > 0 {
		return s.opts.MaxChangeBytes
	}
	return 8 << 20
}
