// Package sinks holds the publishers of finished metrics to the backends that
// users query: Prometheus, Elasticsearch, Grafana Cloud (remote write), and
// JSON lines on standard output or in a file, rotated by size. A
// publisher knows only schemas: it takes batches of metrics, honours its
// context and returns errors that say what failed (errors.go); package
// delivery decides what to retry, what to keep and what to dead-letter.
package sinks

import (
	"context"

	"github.com/pipetel/pipetel/schemas"
)

// Publisher sends finished metrics to one backend. It is the seed's
// MetricsPublisher, batch-oriented. A Publisher must be safe for concurrent
// use. Publishing the same metric twice must not count it twice in the backend
// where the backend has ids (Elasticsearch); counters (Prometheus) rely on the
// caller to deliver each metric once per process.
//
// A user's own publisher, run by package instance (WithPublisher), is this
// interface too. Two optional ones: Setup(ctx) error, called (and retried)
// before the first delivery (delivery.Setupper), and io.Closer, called once
// when the instance stops, after the publisher's delivery has ended.
type Publisher interface {
	// Name identifies the publisher in logs, metrics and outbox keys.
	Name() string
	// PublishEvents sends a batch of event metrics.
	PublishEvents(ctx context.Context, metrics []schemas.EventMetric) error
	// PublishNetwork sends a batch of network metrics.
	PublishNetwork(ctx context.Context, metrics []schemas.NetworkMetric) error
}
