package instance

import (
	"log/slog"

	"github.com/pipetel/pipetel/sinks"
)

// Option tunes New beyond the configuration.
type Option func(*options)

type options struct {
	publishers []sinks.Publisher
	log        *slog.Logger
}

// WithPublisher adds a publisher of yours, delivered from its own outbox
// after the built-in ones; give it several times for several publishers.
// Its Name keys the outbox, labels its metrics (pipetel_publish_*{publisher},
// pipetel_outbox_*) and is the pipetel-publisher header of its dead letters,
// so keep it stable across restarts: 1 to 64 of a-z, 0-9, '_', '-', starting
// with a letter, unique, and none of the built-ins' (prometheus,
// elasticsearch, jsonl, grafanacloud). The outbox of a name no longer given
// stays on disk, undelivered.
//
// Its errors say what to do, as sinks/errors.go describes: nil
// accepts the whole batch; an error wrapping sinks.ErrPermanent (such as a
// *sinks.HTTPError with a 4xx status) dead-letters it; a
// *sinks.RejectedError dead-letters exactly its items and accepts the rest;
// sinks.ErrAuth keeps the batch until the credentials are fixed; any other
// error sends the batch again after a backoff (sinks.delivery.min_backoff to
// max_backoff, full jitter). Delivery is at least once: a batch may come
// again after a crash, so let a backend with ids overwrite. Optional: Setup(ctx)
// error runs, retried, before its first delivery; Close() error runs once
// at stop. Default: no publisher of yours.
func WithPublisher(p sinks.Publisher) Option {
	return func(o *options) { o.publishers = append(o.publishers, p) }
}

// WithLogger sets the instance's logger. Default: the configuration's log
// section (level and format) on standard error, as pipetel run logs.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.log = l }
}
