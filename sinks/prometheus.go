package sinks

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipetel/pipetel/schemas"
)

var _ Publisher = (*Prometheus)(nil)

// Default histogram buckets, in seconds: the state store's, so that the
// process-mode publisher and the state-backed series have the same bounds.
// Pipeline events run from milliseconds to minutes; network operations from a
// millisecond to tens of seconds. Do not modify them; PrometheusConfig copies
// them.
var (
	DefaultDurationBuckets = schemas.DefaultDurationBuckets
	DefaultLatencyBuckets  = schemas.DefaultLatencyBuckets
)

// DefaultMaxHosts is PrometheusConfig.MaxHosts when it is 0.
const DefaultMaxHosts = 100

// OtherHost is the host label value of every host seen after MaxHosts
// distinct ones.
const OtherHost = "other"

// DefaultMaxLabelValues is how many distinct event_name (and, separately,
// operation) label values the in-memory series take when
// WithMaxLabelValues is not given: the state store's default.
const DefaultMaxLabelValues = schemas.DefaultMaxLabelValues

// OtherLabelValue is the event_name (operation) of the metrics of names seen
// after the cap; a metric really named "other" shares its series.
const OtherLabelValue = schemas.OtherLabelValue

// nativeBucketFactor is the native histograms' growth factor between buckets
// (about 7% relative error); nativeMaxBuckets and nativeMinReset bound their
// memory: past 160 buckets the histogram resets, at most once an hour, and
// otherwise halves its resolution.
const (
	nativeBucketFactor = 1.1
	nativeMaxBuckets   = 160
	nativeMinReset     = time.Hour
)

// PrometheusConfig configures the Prometheus publisher. The zero value is
// valid: default buckets, classic histograms only, no host label.
type PrometheusConfig struct {
	// DurationBuckets are event_duration_seconds' upper bounds in seconds,
	// strictly increasing, finite and positive. Default DefaultDurationBuckets.
	DurationBuckets []float64 `yaml:"duration_buckets"`
	// LatencyBuckets are network_latency_seconds' upper bounds, as above.
	// Default DefaultLatencyBuckets.
	LatencyBuckets []float64 `yaml:"latency_buckets"`
	// NativeHistograms adds native (sparse) histograms, growth factor 1.1,
	// beside the classic buckets. Scrapers that do not ask for them (and the
	// Grafana Cloud publisher) see the classic buckets only.
	NativeHistograms bool `yaml:"native_histograms"`
	// HostLabel adds a host label to the network metrics. Off by default:
	// every host is a new series.
	HostLabel bool `yaml:"host_label"`
	// MaxHosts caps the distinct host label values when HostLabel is on; later
	// hosts share host="other" for the life of the process. Default 100.
	MaxHosts int `yaml:"max_hosts"`
}

// PrometheusSection is where pipetel's configuration file holds the
// Prometheus publisher; its validation errors name fields by this path.
const PrometheusSection = "sinks.prometheus"

// Validate reports the first invalid field by its path in the
// configuration file (PrometheusSection), its value and what is expected.
func (c PrometheusConfig) Validate() error { return c.validate(PrometheusSection) }

// validate is Validate for the configuration at path (Grafana Cloud's
// metrics section is one too).
func (c PrometheusConfig) validate(at string) error {
	if err := validateBuckets(at+".duration_buckets", c.DurationBuckets); err != nil {
		return err
	}
	if err := validateBuckets(at+".latency_buckets", c.LatencyBuckets); err != nil {
		return err
	}
	if c.MaxHosts < 0 {
		return fmt.Errorf("%s.max_hosts: got %d, expected 0 (default %d) or more", at, c.MaxHosts, DefaultMaxHosts)
	}
	return nil
}

func validateBuckets(field string, b []float64) error {
	for i, v := range b {
		if math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
			return fmt.Errorf("%s[%d]: got %v, expected a finite number of seconds above 0", field, i, v)
		}
		if i > 0 && v <= b[i-1] {
			return fmt.Errorf("%s[%d]: got %v, expected strictly increasing bounds, above %v", field, i, v, b[i-1])
		}
	}
	return nil
}

func (c PrometheusConfig) withDefaults() PrometheusConfig {
	if len(c.DurationBuckets) == 0 {
		c.DurationBuckets = DefaultDurationBuckets
	}
	if len(c.LatencyBuckets) == 0 {
		c.LatencyBuckets = DefaultLatencyBuckets
	}
	c.DurationBuckets = append([]float64(nil), c.DurationBuckets...)
	c.LatencyBuckets = append([]float64(nil), c.LatencyBuckets...)
	if c.MaxHosts == 0 {
		c.MaxHosts = DefaultMaxHosts
	}
	return c
}

// Prometheus publishes finished metrics as Prometheus series on a registry
// that the caller serves (or that the Grafana Cloud publisher pushes):
//
//	events_total{event_name,status}                 counter
//	event_duration_seconds{event_name,status}       histogram
//	event_retries_total{event_name}                 counter, adds each event's RetryCount
//	network_operations_total{operation,status}      counter
//	network_bytes_total{operation,direction}        counter, direction = sent | received
//	network_latency_seconds{operation}              histogram
//
// with a host label on the network metrics when HostLabel is on. At most
// WithMaxLabelValues distinct event names, and operations, get series of
// their own (for the life of the process); the metrics of later names are
// counted under OtherLabelValue and in
// pipetel_publish_folded_label_values_total.
//
// Events and operations without a duration (timed_out and orphan metrics,
// whose DurationSeconds or LatencySeconds is nil) are counted in
// events_total / network_operations_total but observed in no histogram, so
// a histogram's _count can be below the counter's. Negative durations (clock
// skew between hosts) are observed as 0; negative counts add nothing.
//
// Counters have no ids: the caller delivers each metric once per process.
type Prometheus struct {
	cfg PrometheusConfig

	eventsTotal   *prometheus.CounterVec
	eventDuration *prometheus.HistogramVec
	eventRetries  *prometheus.CounterVec
	netOps        *prometheus.CounterVec
	netBytes      *prometheus.CounterVec
	netLatency    *prometheus.HistogramVec

	mu        sync.Mutex
	hosts     map[string]struct{} // host label values given out so far
	names     map[string]struct{} // event_name label values given out so far
	ops       map[string]struct{} // operation label values given out so far
	maxLabels int
	folded    prometheus.Counter // registered by the owner (WithRegisterer)
}

// NewPrometheus registers the publisher's metrics on reg, which must not be
// nil (pipetel never uses the global registry). Options: WithMaxLabelValues,
// and WithRegisterer for its own pipetel_publish_folded_label_values_total
// (not registered without it).
func NewPrometheus(reg prometheus.Registerer, cfg PrometheusConfig, opts ...Option) (*Prometheus, error) {
	o := newOptions(opts)
	p, err := newPrometheus(reg, cfg, o.maxLabelValues, "prometheus")
	if err != nil {
		return nil, err
	}
	if o.reg != nil {
		if err := o.reg.Register(p.folded); err != nil {
			p.unregister(reg)
			return nil, fmt.Errorf("cannot register prometheus publisher's metrics: %w", err)
		}
	}
	return p, nil
}

// newPrometheus is NewPrometheus for publisher, whose own folded counter the
// caller registers.
func newPrometheus(reg prometheus.Registerer, cfg PrometheusConfig, maxLabels int, publisher string) (*Prometheus, error) {
	if reg == nil {
		return nil, errors.New("cannot create prometheus publisher: nil registerer")
	}
	if maxLabels <= 0 {
		maxLabels = DefaultMaxLabelValues
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()

	histogram := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		opts := prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}
		if cfg.NativeHistograms {
			opts.NativeHistogramBucketFactor = nativeBucketFactor
			opts.NativeHistogramMaxBucketNumber = nativeMaxBuckets
			opts.NativeHistogramMinResetDuration = nativeMinReset
		}
		return prometheus.NewHistogramVec(opts, labels)
	}
	netLabels := func(labels ...string) []string {
		if cfg.HostLabel {
			return append(labels, "host")
		}
		return labels
	}

	p := &Prometheus{
		cfg: cfg,
		eventsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "events_total",
			Help: "Finished pipeline events, by event name and final status.",
		}, []string{"event_name", "status"}),
		eventDuration: histogram("event_duration_seconds",
			"Duration of finished pipeline events that have both a start and an end.",
			cfg.DurationBuckets, "event_name", "status"),
		eventRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "event_retries_total",
			Help: "Retries of finished pipeline events (the sum of their retry counts).",
		}, []string{"event_name"}),
		netOps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "network_operations_total",
			Help: "Finished network operations, by operation and final status.",
		}, netLabels("operation", "status")),
		netBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "network_bytes_total",
			Help: "Bytes moved by finished network operations, by direction (sent or received).",
		}, netLabels("operation", "direction")),
		netLatency: histogram("network_latency_seconds",
			"Latency of finished network operations that have both a start and an end.",
			cfg.LatencyBuckets, netLabels("operation")...),
		hosts:     make(map[string]struct{}),
		names:     make(map[string]struct{}),
		ops:       make(map[string]struct{}),
		maxLabels: maxLabels,
		folded: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "pipetel_publish_folded_label_values_total",
			Help:        `Finished metrics whose event_name or operation the publisher's in-memory series counted under "other", past its cap of distinct values.`,
			ConstLabels: prometheus.Labels{"publisher": publisher},
		}),
	}

	for i, c := range p.collectors() {
		if err := reg.Register(c); err != nil {
			for _, done := range p.collectors()[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("cannot register prometheus publisher's metrics: %w", err)
		}
	}
	return p, nil
}

func (p *Prometheus) collectors() []prometheus.Collector {
	return []prometheus.Collector{p.eventsTotal, p.eventDuration, p.eventRetries, p.netOps, p.netBytes, p.netLatency}
}

func (p *Prometheus) unregister(reg prometheus.Registerer) {
	for _, c := range p.collectors() {
		reg.Unregister(c)
	}
}

// Name returns "prometheus".
func (p *Prometheus) Name() string { return "prometheus" }

// PublishEvents adds the events to the counters and histograms. It fails only
// when ctx has ended, and then changes nothing.
func (p *Prometheus) PublishEvents(ctx context.Context, metrics []schemas.EventMetric) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("cannot publish %d events to prometheus: %w", len(metrics), err)
	}
	p.addEvents(metrics)
	return nil
}

// PublishNetwork adds the operations to the counters and histograms. It fails
// only when ctx has ended, and then changes nothing.
func (p *Prometheus) PublishNetwork(ctx context.Context, metrics []schemas.NetworkMetric) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("cannot publish %d network operations to prometheus: %w", len(metrics), err)
	}
	p.addNetwork(metrics)
	return nil
}

func (p *Prometheus) addEvents(metrics []schemas.EventMetric) {
	for i := range metrics {
		m := &metrics[i]
		name, status := p.capped(p.names, labelValue(m.EventName)), labelValue(string(m.Status))
		p.eventsTotal.WithLabelValues(name, status).Inc()
		// Add even 0 so that every event name has a retries series.
		p.eventRetries.WithLabelValues(name).Add(float64(max(m.RetryCount, 0)))
		if d, ok := seconds(m.DurationSeconds); ok {
			p.eventDuration.WithLabelValues(name, status).Observe(d)
		}
	}
}

func (p *Prometheus) addNetwork(metrics []schemas.NetworkMetric) {
	for i := range metrics {
		m := &metrics[i]
		var host []string
		if p.cfg.HostLabel {
			host = []string{p.hostLabel(labelValue(m.Host))}
		}
		labels := func(values ...string) []string { return append(values, host...) }
		op := p.capped(p.ops, labelValue(m.Operation))
		p.netOps.WithLabelValues(labels(op, labelValue(string(m.Status)))...).Inc()
		p.netBytes.WithLabelValues(labels(op, "sent")...).Add(float64(max(m.BytesSent, 0)))
		p.netBytes.WithLabelValues(labels(op, "received")...).Add(float64(max(m.BytesReceived, 0)))
		if d, ok := seconds(m.LatencySeconds); ok {
			p.netLatency.WithLabelValues(labels(op)...).Observe(d)
		}
	}
}

// hostLabel returns host while fewer than MaxHosts hosts have been seen, and
// OtherHost for every new host after that.
func (p *Prometheus) hostLabel(host string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.hosts[host]; ok {
		return host
	}
	if len(p.hosts) >= p.cfg.MaxHosts {
		return OtherHost
	}
	p.hosts[host] = struct{}{}
	return host
}

// capped returns v while it is one of the first maxLabels values of seen,
// and OtherLabelValue, counted as folded, for every later one.
func (p *Prometheus) capped(seen map[string]struct{}, v string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := seen[v]; ok {
		return v
	}
	if len(seen) >= p.maxLabels {
		p.folded.Inc()
		return OtherLabelValue
	}
	seen[v] = struct{}{}
	return v
}

// labelValue makes s a valid label value: WithLabelValues panics on invalid
// UTF-8, which JSON-decoded strings never hold but other callers might.
func labelValue(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// seconds returns a duration to observe: none for nil, NaN or ±Inf, 0 for
// negative values.
func seconds(d *float64) (float64, bool) {
	if d == nil || math.IsNaN(*d) || math.IsInf(*d, 0) {
		return 0, false
	}
	return max(*d, 0), true
}
