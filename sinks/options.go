package sinks

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipetel/pipetel/internal/backoff"
)

// Option tunes a publisher beyond its configuration file. Options that do not
// apply to a publisher are ignored.
type Option func(*options)

type options struct {
	retry     retryPolicy
	transport http.RoundTripper
	now       func() time.Time
	logger    *slog.Logger
	gatherer  prometheus.Gatherer
	reg       prometheus.Registerer
	output    io.Writer

	maxLabelValues int
}

func newOptions(opts []Option) options {
	o := options{
		retry: retryPolicy{attempts: 4, initial: 200 * time.Millisecond, max: 5 * time.Second},
		now:   time.Now,
	}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithRetry sets how a publisher retries inside one call (Elasticsearch items
// refused with 429 or 5xx; Grafana Cloud pushes that failed with 429, 5xx or a
// network error): at most attempts tries in all, waiting initial before the
// second, doubling up to max, each wait shortened by a random part of up to
// half. Default: 4 attempts, 200ms, 5s. attempts below 1 count as 1.
func WithRetry(attempts int, initial, max time.Duration) Option {
	return func(o *options) {
		o.retry = retryPolicy{attempts: attempts, initial: initial, max: max}
	}
}

// WithTransport sets the HTTP transport. Default: a clone of
// http.DefaultTransport carrying the configured TLS settings (ca_file,
// insecure_skip_verify), which do not apply to a transport given here.
// Elasticsearch's OpenSearch mode wraps whichever transport is used.
func WithTransport(rt http.RoundTripper) Option {
	return func(o *options) { o.transport = rt }
}

// WithClock sets the clock that stamps Grafana Cloud samples. Default
// time.Now.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// WithLogger sets where Grafana Cloud's Run reports failed pushes. Default
// slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// WithGatherer makes Grafana Cloud push the series that g gathers instead of
// its own aggregation of the metrics it is given: pipetel passes a registry
// holding the state-backed aggregates (delivery.NewStateMetrics), which stay exact
// across restarts and partition moves. PublishEvents and PublishNetwork then
// do nothing, so the publisher needs no outbox, and GrafanaCloudConfig.Metrics
// does not apply. Default: none (push the aggregation of what was published).
func WithGatherer(g prometheus.Gatherer) Option {
	return func(o *options) { o.gatherer = g }
}

// WithRegisterer registers Grafana Cloud's own metrics on reg, each with the
// label publisher="grafanacloud": pipetel_push_sent_total (pushes that every
// request of succeeded), pipetel_push_failed_total (pushes that failed after
// their retries), pipetel_push_series (series in the last push) and
// pipetel_push_last_success_timestamp_seconds, and, for its in-memory
// series, pipetel_publish_folded_label_values_total (see
// WithMaxLabelValues). The Prometheus publisher registers the latter there
// too. Default: none registered.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(o *options) { o.reg = reg }
}

// WithMaxLabelValues caps the distinct event_name, and separately operation,
// label values of a publisher's in-memory series (Prometheus in process mode,
// Grafana Cloud without WithGatherer) at n for the life of the process: the
// metrics of later names are counted under OtherLabelValue and in
// pipetel_publish_folded_label_values_total{publisher} (on WithRegisterer's
// registry), so that no stream of names grows the series without bound.
// Default (and n <= 0) DefaultMaxLabelValues; pipetel passes
// state.max_label_values, the cap the state-backed series have per
// partition.
func WithMaxLabelValues(n int) Option {
	return func(o *options) { o.maxLabelValues = n }
}

// WithOutput sets where the JSON-lines publisher writes when its path is
// "-". Default os.Stdout.
func WithOutput(w io.Writer) Option {
	return func(o *options) { o.output = w }
}

// retryPolicy is exponential backoff with jitter, bounded by attempts.
type retryPolicy struct {
	attempts     int
	initial, max time.Duration
}

// more reports whether another try may follow try number done (1-based).
func (b retryPolicy) more(done int) bool { return done < b.attempts }

// wait sleeps before the try after try number done, or returns ctx's error.
func (b retryPolicy) wait(ctx context.Context, done int) error {
	if !backoff.Wait(ctx, backoff.Delay(done, b.initial, b.max, backoff.Half)) {
		return ctx.Err()
	}
	return nil
}
