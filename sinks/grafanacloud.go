package sinks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipetel/pipetel/schemas"
)

var _ Publisher = (*GrafanaCloud)(nil)

// Grafana Cloud configuration defaults.
const (
	DefaultPushInterval        = 15 * time.Second
	DefaultMaxSeriesPerRequest = 2000
	DefaultPushTimeout         = 30 * time.Second
)

// GrafanaCloudConfig configures the Grafana Cloud publisher, which pushes to
// any Prometheus remote-write 1.0 receiver.
type GrafanaCloudConfig struct {
	// Endpoint is the remote-write URL: Grafana Cloud's
	// https://<stack>/api/prom/push, or a Prometheus started with
	// --web.enable-remote-write-receiver at http://host:9090/api/v1/write.
	// Required.
	Endpoint string `yaml:"endpoint"`
	// InstanceID (the stack's numeric Prometheus instance id) and APIKey (an
	// access-policy token with metrics:write) are the basic auth user and
	// password; set both or neither.
	InstanceID string `yaml:"instance_id"`
	APIKey     string `yaml:"api_key"`
	// PushInterval is how often Run pushes every series. Default 15s.
	PushInterval time.Duration `yaml:"push_interval"`
	// MaxSeriesPerRequest splits a push into requests of at most this many
	// series. Default 2000.
	MaxSeriesPerRequest int `yaml:"max_series_per_request"`
	// InstanceLabel is the value of the instance label on every series, which
	// keeps several pipetel processes from writing to the same series.
	// Default "<hostname>-<pid>". Give each process its own value.
	InstanceLabel string `yaml:"instance_label"`
	// Timeout bounds each HTTP request. Default 30s.
	Timeout time.Duration `yaml:"timeout"`
	// Metrics chooses buckets and the host label of the pushed series, as for
	// the Prometheus publisher; native_histograms is not supported.
	Metrics PrometheusConfig `yaml:"metrics"`
}

// GrafanaCloudSection is where pipetel's configuration file holds the
// Grafana Cloud publisher; its validation errors name fields by this path.
const GrafanaCloudSection = "sinks.grafana_cloud"

// Validate reports the first invalid field by its path in the
// configuration file (GrafanaCloudSection), its value and what is expected.
func (c GrafanaCloudConfig) Validate() error {
	const at = GrafanaCloudSection
	u, err := url.Parse(c.Endpoint)
	if c.Endpoint == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s.endpoint: got %q, expected an http:// or https:// remote-write URL such as https://<stack>/api/prom/push", at, redactQuery(c.Endpoint))
	}
	if u.User != nil {
		return fmt.Errorf("%s.endpoint: got %q, expected no credentials in the URL: use instance_id and api_key", at, u.Redacted())
	}
	if (c.InstanceID == "") != (c.APIKey == "") {
		return fmt.Errorf("%s.instance_id/api_key: got one of them, expected both set or both empty", at)
	}
	if c.PushInterval < 0 {
		return fmt.Errorf("%s.push_interval: got %v, expected 0 (default %v) or more", at, c.PushInterval, DefaultPushInterval)
	}
	if c.MaxSeriesPerRequest < 0 {
		return fmt.Errorf("%s.max_series_per_request: got %d, expected 0 (default %d) or more", at, c.MaxSeriesPerRequest, DefaultMaxSeriesPerRequest)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("%s.timeout: got %v, expected 0 (default %v) or more", at, c.Timeout, DefaultPushTimeout)
	}
	if c.Metrics.NativeHistograms {
		return fmt.Errorf("%s.metrics.native_histograms: got true, expected false (remote write 1.0 carries classic histograms only)", at)
	}
	return c.Metrics.validate(at + ".metrics")
}

func (c GrafanaCloudConfig) withDefaults() GrafanaCloudConfig {
	if c.PushInterval == 0 {
		c.PushInterval = DefaultPushInterval
	}
	if c.MaxSeriesPerRequest == 0 {
		c.MaxSeriesPerRequest = DefaultMaxSeriesPerRequest
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultPushTimeout
	}
	if c.InstanceLabel == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "pipetel"
		}
		c.InstanceLabel = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	return c
}

// String shows the configuration with the API key redacted.
func (c GrafanaCloudConfig) String() string {
	if c.APIKey != "" {
		c.APIKey = "REDACTED"
	}
	type plain GrafanaCloudConfig
	return fmt.Sprintf("%+v", plain(c))
}

// GrafanaCloud aggregates finished metrics in memory, in the series of the
// Prometheus publisher on a private registry, and pushes all of them with
// Prometheus remote write every PushInterval (Run) and on demand (Push).
// With WithGatherer it pushes the series of the given gatherer instead (in
// pipetel, the state-backed aggregates) and ignores what it is given.
// The in-memory series give at most WithMaxLabelValues event names, and
// operations, series of their own; later names share "other" (counted in
// pipetel_publish_folded_label_values_total), so a push never carries an
// unbounded number of series.
//
// PublishEvents and PublishNetwork only update the aggregation and never
// fail; a push that fails is retried inside the push on 429, 5xx and network
// errors (see WithRetry) and otherwise reported: Run logs it and pushes again
// at the next interval, Push returns it. Since every push sends cumulative
// values, a failed push loses no counts, only resolution.
//
// Every series carries instance=<InstanceLabel>, and each push's timestamp is
// above the previous one's, so that the receiver never sees out-of-order
// samples from this process.
type GrafanaCloud struct {
	cfg    GrafanaCloudConfig
	opts   options
	client *http.Client
	log    *slog.Logger
	gather prometheus.Gatherer
	agg    *Prometheus // nil with WithGatherer
	m      *pushMetrics

	pushMu sync.Mutex // one push at a time, in timestamp order
	lastTS int64      // ms; under pushMu
}

// NewGrafanaCloud validates cfg and creates the publisher. Call Run to push.
func NewGrafanaCloud(cfg GrafanaCloudConfig, opts ...Option) (*GrafanaCloud, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	o := newOptions(opts)
	gather := o.gatherer
	var agg *Prometheus
	if gather == nil {
		reg := prometheus.NewRegistry()
		var err error
		if agg, err = newPrometheus(reg, cfg.Metrics, o.maxLabelValues, "grafanacloud"); err != nil {
			return nil, fmt.Errorf("cannot create grafanacloud aggregation: %w", err)
		}
		gather = reg
	}
	var m *pushMetrics
	if o.reg != nil {
		var err error
		var own []prometheus.Collector
		if agg != nil {
			own = append(own, agg.folded)
		}
		if m, err = newPushMetrics(o.reg, "grafanacloud", own...); err != nil {
			return nil, fmt.Errorf("cannot register grafanacloud metrics: %w", err)
		}
	}
	rt := o.transport
	if rt == nil {
		rt = http.DefaultTransport.(*http.Transport).Clone()
	}
	log := o.logger
	if log == nil {
		log = slog.Default()
	}
	return &GrafanaCloud{
		cfg:    cfg,
		opts:   o,
		client: &http.Client{Transport: rt},
		log:    log.With("publisher", "grafanacloud"),
		gather: gather,
		agg:    agg,
		m:      m,
	}, nil
}

// Name returns "grafanacloud".
func (g *GrafanaCloud) Name() string { return "grafanacloud" }

// Config returns the configuration with defaults filled in.
func (g *GrafanaCloud) Config() GrafanaCloudConfig { return g.cfg }

// PublishEvents adds the events to the aggregation; it never fails. With
// WithGatherer it does nothing.
func (g *GrafanaCloud) PublishEvents(_ context.Context, metrics []schemas.EventMetric) error {
	if g.agg != nil {
		g.agg.addEvents(metrics)
	}
	return nil
}

// PublishNetwork adds the operations to the aggregation; it never fails.
// With WithGatherer it does nothing.
func (g *GrafanaCloud) PublishNetwork(_ context.Context, metrics []schemas.NetworkMetric) error {
	if g.agg != nil {
		g.agg.addNetwork(metrics)
	}
	return nil
}

// Run pushes every PushInterval until ctx ends, then pushes once more (within
// Timeout) so that the last counts reach the receiver, and returns that push's
// error. Failed pushes before that are logged, not returned: the next push
// carries their values.
func (g *GrafanaCloud) Run(ctx context.Context) error {
	t := time.NewTicker(g.cfg.PushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.cfg.Timeout)
			defer cancel()
			return g.Push(final)
		case <-t.C:
			if err := g.Push(ctx); err != nil && ctx.Err() == nil {
				if errors.Is(err, ErrAuth) {
					// Retrying cannot help until the configuration changes.
					g.log.Error("cannot push metrics: the endpoint refused the credentials; check instance_id and api_key", "err", err)
				} else {
					g.log.Warn("cannot push metrics; the next push carries them", "err", err)
				}
			}
		}
	}
}

// Push sends every series once, stamped with one timestamp, in requests of at
// most MaxSeriesPerRequest series.
func (g *GrafanaCloud) Push(ctx context.Context) error {
	g.pushMu.Lock()
	defer g.pushMu.Unlock()
	err := g.push(ctx)
	if g.m != nil {
		if err != nil {
			g.m.failed.Inc()
		} else {
			g.m.sent.Inc()
			g.m.lastSuccess.Set(float64(g.opts.now().UnixMilli()) / 1e3)
		}
	}
	return err
}

func (g *GrafanaCloud) push(ctx context.Context) error {
	mfs, err := g.gather.Gather()
	if err != nil {
		// A gatherer returns what it could gather beside the error; a
		// partial push would make sums drop, so push nothing.
		return fmt.Errorf("cannot gather grafanacloud series: %w", err)
	}
	ts := g.opts.now().UnixMilli()
	if ts <= g.lastTS {
		ts = g.lastTS + 1
	}
	g.lastTS = ts
	series := familiesToSeries(mfs, []rwLabel{{"instance", g.cfg.InstanceLabel}}, ts)
	if g.m != nil {
		g.m.series.Set(float64(len(series)))
	}
	var buf []byte
	for start := 0; start < len(series); start += g.cfg.MaxSeriesPerRequest {
		chunk := series[start:min(start+g.cfg.MaxSeriesPerRequest, len(series))]
		buf = appendWriteRequest(buf[:0], chunk)
		if err := g.send(ctx, snappy.Encode(nil, buf)); err != nil {
			return fmt.Errorf("cannot push %d of %d series to %q: %w", len(chunk), len(series), g.endpointForLog(), err)
		}
	}
	return nil
}

// endpointForLog is the endpoint without its query, which some gateways use
// for tokens.
func (g *GrafanaCloud) endpointForLog() string {
	u, err := url.Parse(g.cfg.Endpoint)
	if err != nil {
		return ""
	}
	u.RawQuery = ""
	return u.String()
}

// send posts one snappy-compressed WriteRequest, retrying 429, 5xx and
// network errors.
func (g *GrafanaCloud) send(ctx context.Context, body []byte) error {
	for try := 1; ; try++ {
		err := g.post(ctx, body)
		var he *HTTPError
		if err == nil || !errors.As(err, &he) || !he.Retryable() || !g.opts.retry.more(try) {
			return err
		}
		if werr := g.opts.retry.wait(ctx, try); werr != nil {
			return errors.Join(err, werr)
		}
	}
}

func (g *GrafanaCloud) post(parent context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(parent, g.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.cfg.Endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("cannot build remote-write request: %w", err)
	}
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	req.Header.Set("User-Agent", "pipetel")
	if g.cfg.InstanceID != "" {
		req.SetBasicAuth(g.cfg.InstanceID, g.cfg.APIKey)
	}
	res, err := g.client.Do(req)
	if err != nil {
		// The endpoint's query string can carry a token: errors, which end
		// up in the log, name the endpoint without it.
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = redactQuery(ue.URL)
		}
		if parent.Err() != nil {
			return fmt.Errorf("%w (%v)", parent.Err(), err)
		}
		// Including our own timeout: worth another try.
		return &HTTPError{Publisher: g.Name(), Err: err}
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(res.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20)) // reuse the connection
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return newHTTPError(g.Name(), res.StatusCode, data)
	}
	return nil
}

// pushMetrics are a pushing publisher's own metrics (see WithRegisterer).
type pushMetrics struct {
	sent, failed        prometheus.Counter
	series, lastSuccess prometheus.Gauge
}

// newPushMetrics registers the push metrics and the publisher's other own
// collectors on reg.
func newPushMetrics(reg prometheus.Registerer, publisher string, own ...prometheus.Collector) (*pushMetrics, error) {
	labels := prometheus.Labels{"publisher": publisher}
	m := &pushMetrics{
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pipetel_push_sent_total", Help: "Pushes whose every request the receiver accepted.", ConstLabels: labels,
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pipetel_push_failed_total", Help: "Pushes that failed after their retries (the next push carries their values).", ConstLabels: labels,
		}),
		series: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pipetel_push_series", Help: "Series in the last push.", ConstLabels: labels,
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pipetel_push_last_success_timestamp_seconds", Help: "Unix time of the last successful push; 0 before the first.", ConstLabels: labels,
		}),
	}
	cs := append([]prometheus.Collector{m.sent, m.failed, m.series, m.lastSuccess}, own...)
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return nil, err
		}
	}
	return m, nil
}

// redactQuery replaces a URL's query string, if any, with "REDACTED".
func redactQuery(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.RawQuery == "" {
		return raw
	}
	u.RawQuery = "REDACTED"
	return u.String()
}
