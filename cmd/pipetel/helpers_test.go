package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	dto "github.com/prometheus/client_model/go"

	"github.com/pipetel/pipetel/processor/testbroker"
	"github.com/pipetel/pipetel/telemetry"
)

// testTopics are the unique topics and group of one test.
type testTopics struct {
	events, network, deadLetter, group string
}

func newTestTopics(t *testing.T, b *testbroker.Broker, partitions int) testTopics {
	t.Helper()
	tt := testTopics{
		events:     testbroker.Name(t, "events"),
		network:    testbroker.Name(t, "network"),
		deadLetter: testbroker.Name(t, "dead"),
		group:      testbroker.Name(t, "group"),
	}
	b.CreateTopics(t, partitions, tt.events, tt.network, tt.deadLetter)
	return tt
}

// runningApp is one pipetel instance inside a test.
type runningApp struct {
	*app
	stop func() error
}

func testConfig(b *testbroker.Broker, tt testTopics, dir string) Config {
	var cfg Config
	cfg.Processor.Brokers = b.Addrs
	cfg.Processor.GroupID = tt.group
	cfg.Processor.EventsTopic = tt.events
	cfg.Processor.NetworkTopic = tt.network
	cfg.Processor.DeadLetterTopic = tt.deadLetter
	cfg.Processor.SessionTimeout = 3 * time.Second
	cfg.Processor.HeartbeatInterval = 300 * time.Millisecond
	cfg.Processor.RebalanceTimeout = 3 * time.Second
	cfg.Processor.CommitInterval = 200 * time.Millisecond
	cfg.State.Dir = dir
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.withDefaults()
	return cfg
}

// startApp runs an instance until the test ends or stop is called.
func startApp(t *testing.T, cfg Config) *runningApp {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("PIPETEL_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	a, err := newApp(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()
	var stopped atomic.Bool
	ra := &runningApp{app: a}
	var result error
	ra.stop = func() error {
		if stopped.CompareAndSwap(false, true) {
			cancel()
			result = <-done
		}
		return result
	}
	t.Cleanup(func() { ra.stop() })
	select {
	case <-a.proc.Ready():
	case err := <-done:
		t.Fatalf("instance stopped before joining the group: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("instance did not join the group within 60s")
	}
	return ra
}

// getJSON fetches path from the instance and decodes the body into out,
// returning the status code.
func (a *runningApp) getJSON(t *testing.T, path string, out any) int {
	t.Helper()
	resp, err := http.Get("http://" + a.Addr() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("GET %s: Content-Type %q, want application/json; body %s", path, ct, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("GET %s: cannot decode %s: %v", path, body, err)
	}
	return resp.StatusCode
}

// scrape reads /metrics over HTTP and parses the text exposition.
func (a *runningApp) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + a.Addr() + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("cannot parse /metrics: %v", err)
	}
	return fams
}

// sumMetric adds the values (counter, gauge, or histogram sample count) of
// the series of name whose labels include want.
func sumMetric(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f, ok := fams[name]
	if !ok {
		return 0
	}
	var sum float64
	for _, m := range f.Metric {
		match := true
		for k, v := range want {
			found := false
			for _, l := range m.Label {
				found = found || (l.GetName() == k && l.GetValue() == v)
			}
			match = match && found
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last state: %s", timeout, what, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fakeClock is the SDK clock of a test: every record gets the time the test
// set, so durations are exact.
type fakeClock struct{ nanos atomic.Int64 }

func (c *fakeClock) set(t time.Time) { c.nanos.Store(t.UnixNano()) }
func (c *fakeClock) now() time.Time  { return time.Unix(0, c.nanos.Load()).UTC() }
func newProducer(t *testing.T, b *testbroker.Broker, tt testTopics, clock *fakeClock) *telemetry.Producer {
	t.Helper()
	p, err := telemetry.NewProducer(b.Addrs, telemetry.WithEventsTopic(tt.events), telemetry.WithNetworkTopic(tt.network), telemetry.WithClock(clock.now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func describe(v any) string { return fmt.Sprintf("%+v", v) }
