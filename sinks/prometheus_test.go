package sinks

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.yaml.in/yaml/v3"

	"github.com/pipetel/pipetel/schemas"
)

func newTestPrometheus(t *testing.T, cfg PrometheusConfig) (*Prometheus, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	p, err := NewPrometheus(reg, cfg)
	if err != nil {
		t.Fatalf("NewPrometheus: %v", err)
	}
	return p, reg
}

func TestPrometheusEvents(t *testing.T) {
	p, reg := newTestPrometheus(t, PrometheusConfig{DurationBuckets: []float64{1, 10}})
	err := p.PublishEvents(context.Background(), []schemas.EventMetric{
		{TaskID: "1", EventName: "load", Status: schemas.StatusCompleted, DurationSeconds: fp(0.5), RetryCount: 2},
		{TaskID: "2", EventName: "load", Status: schemas.StatusCompleted, DurationSeconds: fp(3)},
		{TaskID: "3", EventName: "load", Status: schemas.StatusFailed, DurationSeconds: fp(20), RetryCount: 1},
		{TaskID: "4", EventName: "load", Status: schemas.StatusTimedOut},
		{TaskID: "5", EventName: "save", Status: schemas.StatusOrphan, RetryCount: 3},
		{TaskID: "6", EventName: "save", Status: schemas.StatusCompleted, DurationSeconds: fp(-2), RetryCount: -1},
	})
	if err != nil {
		t.Fatalf("PublishEvents: %v", err)
	}
	want := `
# HELP event_duration_seconds Duration of finished pipeline events that have both a start and an end.
# TYPE event_duration_seconds histogram
event_duration_seconds_bucket{event_name="load",status="completed",le="1"} 1
event_duration_seconds_bucket{event_name="load",status="completed",le="10"} 2
event_duration_seconds_bucket{event_name="load",status="completed",le="+Inf"} 2
event_duration_seconds_sum{event_name="load",status="completed"} 3.5
event_duration_seconds_count{event_name="load",status="completed"} 2
event_duration_seconds_bucket{event_name="load",status="failed",le="1"} 0
event_duration_seconds_bucket{event_name="load",status="failed",le="10"} 0
event_duration_seconds_bucket{event_name="load",status="failed",le="+Inf"} 1
event_duration_seconds_sum{event_name="load",status="failed"} 20
event_duration_seconds_count{event_name="load",status="failed"} 1
event_duration_seconds_bucket{event_name="save",status="completed",le="1"} 1
event_duration_seconds_bucket{event_name="save",status="completed",le="10"} 1
event_duration_seconds_bucket{event_name="save",status="completed",le="+Inf"} 1
event_duration_seconds_sum{event_name="save",status="completed"} 0
event_duration_seconds_count{event_name="save",status="completed"} 1
# HELP event_retries_total Retries of finished pipeline events (the sum of their retry counts).
# TYPE event_retries_total counter
event_retries_total{event_name="load"} 3
event_retries_total{event_name="save"} 3
# HELP events_total Finished pipeline events, by event name and final status.
# TYPE events_total counter
events_total{event_name="load",status="completed"} 2
events_total{event_name="load",status="failed"} 1
events_total{event_name="load",status="timed_out"} 1
events_total{event_name="save",status="completed"} 1
events_total{event_name="save",status="orphan"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestPrometheusNetwork(t *testing.T) {
	p, reg := newTestPrometheus(t, PrometheusConfig{LatencyBuckets: []float64{0.1}})
	err := p.PublishNetwork(context.Background(), []schemas.NetworkMetric{
		{TaskID: "1", OpID: "a", Host: "db1", Operation: "query", LatencySeconds: fp(0.05), BytesSent: 100, BytesReceived: 2000, Status: schemas.StatusCompleted},
		{TaskID: "1", OpID: "b", Host: "db2", Operation: "query", LatencySeconds: fp(0.25), BytesSent: 10, Status: schemas.StatusFailed},
		{TaskID: "2", OpID: "c", Host: "s3", Operation: "upload", BytesSent: 5, BytesReceived: -1, Status: schemas.StatusTimedOut},
	})
	if err != nil {
		t.Fatalf("PublishNetwork: %v", err)
	}
	want := `
# HELP network_bytes_total Bytes moved by finished network operations, by direction (sent or received).
# TYPE network_bytes_total counter
network_bytes_total{direction="received",operation="query"} 2000
network_bytes_total{direction="received",operation="upload"} 0
network_bytes_total{direction="sent",operation="query"} 110
network_bytes_total{direction="sent",operation="upload"} 5
# HELP network_latency_seconds Latency of finished network operations that have both a start and an end.
# TYPE network_latency_seconds histogram
network_latency_seconds_bucket{operation="query",le="0.1"} 1
network_latency_seconds_bucket{operation="query",le="+Inf"} 2
network_latency_seconds_sum{operation="query"} 0.3
network_latency_seconds_count{operation="query"} 2
# HELP network_operations_total Finished network operations, by operation and final status.
# TYPE network_operations_total counter
network_operations_total{operation="query",status="completed"} 1
network_operations_total{operation="query",status="failed"} 1
network_operations_total{operation="upload",status="timed_out"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestPrometheusHostCap(t *testing.T) {
	p, reg := newTestPrometheus(t, PrometheusConfig{HostLabel: true, MaxHosts: 2})
	var batch []schemas.NetworkMetric
	for _, h := range []string{"a", "b", "c", "a", "d", "b"} {
		batch = append(batch, schemas.NetworkMetric{Host: h, Operation: "get", BytesSent: 1, Status: schemas.StatusCompleted, LatencySeconds: fp(0.002)})
	}
	if err := p.PublishNetwork(context.Background(), batch); err != nil {
		t.Fatalf("PublishNetwork: %v", err)
	}
	f := func(host string, want float64) {
		t.Helper()
		got := testutil.ToFloat64(p.netOps.WithLabelValues("get", "completed", host))
		if got != want {
			t.Errorf("network_operations_total{host=%q} = %v, want %v", host, got, want)
		}
		if got := testutil.ToFloat64(p.netBytes.WithLabelValues("get", "sent", host)); got != want {
			t.Errorf("network_bytes_total{direction=sent,host=%q} = %v, want %v", host, got, want)
		}
	}
	f("a", 2)
	f("b", 2)
	f(OtherHost, 2)
	// 3 host values × (1 ops + 2 bytes + 1 latency) series.
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 12 {
		t.Errorf("series = %d (%v), want 12", n, err)
	}
	if n := testutil.CollectAndCount(p.netLatency); n != 3 {
		t.Errorf("network_latency_seconds series = %d, want 3", n)
	}
}

func TestPrometheusDefaultsAndNative(t *testing.T) {
	f := func(native bool) {
		t.Helper()
		p, reg := newTestPrometheus(t, PrometheusConfig{NativeHistograms: native})
		ctx := context.Background()
		if err := p.PublishEvents(ctx, []schemas.EventMetric{{EventName: "x", Status: schemas.StatusCompleted, DurationSeconds: fp(1.5)}}); err != nil {
			t.Fatal(err)
		}
		if err := p.PublishNetwork(ctx, []schemas.NetworkMetric{{Operation: "y", Status: schemas.StatusCompleted, LatencySeconds: fp(0.2)}}); err != nil {
			t.Fatal(err)
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		wantBuckets := map[string]int{"event_duration_seconds": len(DefaultDurationBuckets), "network_latency_seconds": len(DefaultLatencyBuckets)}
		seen := 0
		for _, mf := range mfs {
			want, ok := wantBuckets[mf.GetName()]
			if !ok {
				continue
			}
			seen++
			h := mf.GetMetric()[0].GetHistogram()
			if got := len(h.GetBucket()); got != want {
				t.Errorf("native=%v %s: %d classic buckets, want %d", native, mf.GetName(), got, want)
			}
			if got := h.Schema != nil; got != native {
				t.Errorf("native=%v %s: has native schema = %v", native, mf.GetName(), got)
			}
			// Factor 1.1 picks the largest factor not above it: schema 3, 2^(2^-3) ≈ 1.09.
			if native && h.GetSchema() != 3 {
				t.Errorf("%s: schema %d, want 3", mf.GetName(), h.GetSchema())
			}
			if h.GetSampleCount() != 1 {
				t.Errorf("%s: count %d, want 1", mf.GetName(), h.GetSampleCount())
			}
		}
		if seen != 2 {
			t.Errorf("native=%v: found %d histograms, want 2", native, seen)
		}
	}
	f(false)
	f(true)
}

func TestPrometheusCanceled(t *testing.T) {
	p, reg := newTestPrometheus(t, PrometheusConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := p.PublishEvents(ctx, []schemas.EventMetric{{EventName: "x", Status: schemas.StatusCompleted}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("PublishEvents error = %v, want context.Canceled", err)
	}
	err = p.PublishNetwork(ctx, []schemas.NetworkMetric{{Operation: "x", Status: schemas.StatusCompleted}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("PublishNetwork error = %v, want context.Canceled", err)
	}
	if n, _ := testutil.GatherAndCount(reg); n != 0 {
		t.Errorf("%d series after canceled publishes, want 0", n)
	}
}

func TestPrometheusRegistration(t *testing.T) {
	if _, err := NewPrometheus(nil, PrometheusConfig{}); err == nil {
		t.Error("NewPrometheus(nil) succeeded, want error")
	}
	reg := prometheus.NewRegistry()
	// Same name, help and labels: the registry reports it as already
	// registered, and forgets it completely on Unregister.
	clash := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "network_bytes_total",
		Help: "Bytes moved by finished network operations, by direction (sent or received).",
	}, []string{"operation", "direction"})
	reg.MustRegister(clash)
	if _, err := NewPrometheus(reg, PrometheusConfig{}); err == nil {
		t.Fatal("NewPrometheus over a clashing metric succeeded, want error")
	}
	if n, _ := testutil.GatherAndCount(reg); n != 0 {
		t.Errorf("%d series after a failed NewPrometheus, want 0", n)
	}
	// The metrics registered before the clash were removed again.
	reg.Unregister(clash)
	if _, err := NewPrometheus(reg, PrometheusConfig{}); err != nil {
		t.Errorf("NewPrometheus after removing the clash: %v", err)
	}
}

func TestPrometheusConfigValidate(t *testing.T) {
	f := func(cfg PrometheusConfig, want string) {
		t.Helper()
		err := cfg.Validate()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("Validate() = %q, want %q", got, want)
		}
	}
	f(PrometheusConfig{}, "")
	f(PrometheusConfig{DurationBuckets: []float64{0.1, 1}, HostLabel: true, MaxHosts: 5}, "")
	f(PrometheusConfig{DurationBuckets: []float64{1, 1}},
		"sinks.prometheus.duration_buckets[1]: got 1, expected strictly increasing bounds, above 1")
	f(PrometheusConfig{LatencyBuckets: []float64{0}},
		"sinks.prometheus.latency_buckets[0]: got 0, expected a finite number of seconds above 0")
	f(PrometheusConfig{MaxHosts: -1},
		"sinks.prometheus.max_hosts: got -1, expected 0 (default 100) or more")
}

func TestPrometheusConfigYAML(t *testing.T) {
	var cfg PrometheusConfig
	in := "duration_buckets: [1, 2]\nlatency_buckets: [0.5]\nnative_histograms: true\nhost_label: true\nmax_hosts: 7\n"
	if err := yaml.Unmarshal([]byte(in), &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.DurationBuckets) != 2 || cfg.LatencyBuckets[0] != 0.5 || !cfg.NativeHistograms || !cfg.HostLabel || cfg.MaxHosts != 7 {
		t.Errorf("decoded %+v", cfg)
	}
}

// TestPrometheusPromtool lints the exposition with promtool (Debian package
// prometheus) when it is installed.
func TestPrometheusPromtool(t *testing.T) {
	p, reg := newTestPrometheus(t, PrometheusConfig{HostLabel: true, NativeHistograms: true})
	ctx := context.Background()
	_ = p.PublishEvents(ctx, []schemas.EventMetric{{EventName: "x", Status: schemas.StatusCompleted, DurationSeconds: fp(1), RetryCount: 1}})
	_ = p.PublishNetwork(ctx, []schemas.NetworkMetric{{Host: "h", Operation: "y", Status: schemas.StatusCompleted, LatencySeconds: fp(0.2), BytesSent: 1}})
	lintExposition(t, reg)
}

func TestPrometheusInvalidUTF8(t *testing.T) {
	p, _ := newTestPrometheus(t, PrometheusConfig{HostLabel: true})
	ctx := context.Background()
	if err := p.PublishEvents(ctx, []schemas.EventMetric{{EventName: "bad\xff", Status: schemas.StatusCompleted}}); err != nil {
		t.Fatal(err)
	}
	if err := p.PublishNetwork(ctx, []schemas.NetworkMetric{{Host: "h\xfe", Operation: "op\xff", Status: schemas.StatusCompleted}}); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(p.eventsTotal.WithLabelValues("bad\uFFFD", "completed")); got != 1 {
		t.Errorf("events_total{event_name=bad\\uFFFD} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(p.netOps.WithLabelValues("op\uFFFD", "completed", "h\uFFFD")); got != 1 {
		t.Errorf("network_operations_total = %v, want 1", got)
	}
}

// TestPrometheusLabelCap: past WithMaxLabelValues distinct event names (and,
// separately, operations) later names share "other", counted as folded on
// the registerer given.
func TestPrometheusLabelCap(t *testing.T) {
	reg, own := prometheus.NewRegistry(), prometheus.NewRegistry()
	p, err := NewPrometheus(reg, PrometheusConfig{}, WithMaxLabelValues(2), WithRegisterer(own))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var events []schemas.EventMetric
	for _, name := range []string{"a", "b", "c", "a", "d"} {
		events = append(events, schemas.EventMetric{EventName: name, Status: schemas.StatusCompleted, RetryCount: 1})
	}
	var ops []schemas.NetworkMetric
	for _, op := range []string{"q", "r", "s", "q"} {
		ops = append(ops, schemas.NetworkMetric{Operation: op, Status: schemas.StatusCompleted})
	}
	if err := p.PublishEvents(ctx, events); err != nil {
		t.Fatal(err)
	}
	if err := p.PublishNetwork(ctx, ops); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP event_retries_total Retries of finished pipeline events (the sum of their retry counts).
# TYPE event_retries_total counter
event_retries_total{event_name="a"} 2
event_retries_total{event_name="b"} 1
event_retries_total{event_name="other"} 2
# HELP events_total Finished pipeline events, by event name and final status.
# TYPE events_total counter
events_total{event_name="a",status="completed"} 2
events_total{event_name="b",status="completed"} 1
events_total{event_name="other",status="completed"} 2
# HELP network_operations_total Finished network operations, by operation and final status.
# TYPE network_operations_total counter
network_operations_total{operation="other",status="completed"} 1
network_operations_total{operation="q",status="completed"} 2
network_operations_total{operation="r",status="completed"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "event_retries_total", "events_total", "network_operations_total"); err != nil {
		t.Error(err)
	}
	if err := testutil.GatherAndCompare(own, strings.NewReader(`
# HELP pipetel_publish_folded_label_values_total Finished metrics whose event_name or operation the publisher's in-memory series counted under "other", past its cap of distinct values.
# TYPE pipetel_publish_folded_label_values_total counter
pipetel_publish_folded_label_values_total{publisher="prometheus"} 3
`)); err != nil {
		t.Error(err)
	}
	// The default is the state's: 1000.
	p2, err := NewPrometheus(prometheus.NewRegistry(), PrometheusConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if p2.maxLabels != 1000 {
		t.Errorf("default cap %d, want 1000", p2.maxLabels)
	}
}
