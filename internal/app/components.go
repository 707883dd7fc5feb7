package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// component is one long-running part of pipetel.
type component struct {
	name string
	run  func(ctx context.Context) error
}

// runComponents starts the components in order, each with its own context.
// When ctx ends or any component fails, it stops them in reverse order, each
// after the one started after it has returned, and logs how long each took.
func runComponents(ctx context.Context, log *slog.Logger, comps []component) error {
	type running struct {
		cancel context.CancelFunc
		done   chan error
	}
	rs := make([]running, len(comps))
	failed := make(chan string, len(comps))
	for i, c := range comps {
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		rs[i] = running{cancel: cancel, done: make(chan error, 1)}
		go func() {
			err := c.run(cctx)
			if err != nil && cctx.Err() == nil {
				failed <- c.name
			}
			rs[i].done <- err
		}()
	}
	var reason string
	select {
	case <-ctx.Done():
		reason = "signal"
	case name := <-failed:
		reason = name + " failed"
	}
	log.Info("shutting down", "reason", reason)
	var errs []error
	for i := len(comps) - 1; i >= 0; i-- {
		started := time.Now()
		rs[i].cancel()
		if err := <-rs[i].done; err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, fmt.Errorf("%s: %w", comps[i].name, err))
		}
		log.Info("stopped", "component", comps[i].name, "took", time.Since(started).Round(time.Millisecond))
	}
	return errors.Join(errs...)
}
