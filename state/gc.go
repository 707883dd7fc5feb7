package state

import (
	"context"
	"errors"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// DefaultGCInterval is how often RunGC rewrites value-log files.
const DefaultGCInterval = 5 * time.Minute

// gcDiscardRatio: a value-log file is rewritten once at least half of it is
// stale, Badger's own recommendation; lower ratios rewrite more for less.
const gcDiscardRatio = 0.5

// RunGC reclaims the disk of deleted and overwritten values until ctx ends:
// every interval (0: DefaultGCInterval) it rewrites value-log files that are
// mostly stale, as many as qualify. Badger never does this by itself, so a
// store whose values reach the value log (the ones over the LSM threshold)
// would otherwise only grow. The LSM tree's own tombstones go with Badger's
// compactions. It returns nil when ctx ends; errors other than "nothing to
// rewrite" are logged and retried at the next interval.
func (s *Store) RunGC(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = DefaultGCInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		n, err := s.valueLogGC(ctx)
		if err != nil && s.opts.Logger != nil {
			s.opts.Logger.Warn("cannot collect value-log garbage", "err", err, "files_rewritten", n)
		}
	}
}

// valueLogGC rewrites value-log files until none qualifies and reports how
// many it rewrote.
func (s *Store) valueLogGC(ctx context.Context) (int, error) {
	if s.opts.Dir == "" {
		return 0, nil // in memory: no value log
	}
	n := 0
	for ctx.Err() == nil {
		err := s.db.RunValueLogGC(gcDiscardRatio)
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
