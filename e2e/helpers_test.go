package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"github.com/pipetel/pipetel/internal/app"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	dto "github.com/prometheus/client_model/go"

	"github.com/pipetel/pipetel/internal/testbroker"
	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/sinks"
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
	*app.App
	stop   func() error
	exited chan struct{} // closed when run returns
}

func testConfig(b *testbroker.Broker, tt testTopics, dir string) app.Config {
	var cfg app.Config
	cfg.Processor.Brokers = b.Addrs
	cfg.Processor.GroupID = tt.group
	cfg.Processor.EventsTopic = tt.events
	cfg.Processor.NetworkTopic = tt.network
	cfg.Processor.DeadLetterTopic = tt.deadLetter
	cfg.Processor.SessionTimeout = 3 * time.Second
	cfg.Processor.HeartbeatInterval = 300 * time.Millisecond
	cfg.Processor.RebalanceTimeout = 3 * time.Second
	cfg.Processor.CommitInterval = 200 * time.Millisecond
	cfg.Processor.Now = testclock.Now
	cfg.State.Dir = dir
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.WithDefaults()
	return cfg
}

// startApp runs an instance until the test ends or stop is called.
func startApp(t *testing.T, cfg app.Config) *runningApp {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("PIPETEL_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	a, err := app.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		err := a.Run(ctx)
		close(exited)
		done <- err
	}()
	var stopped atomic.Bool
	ra := &runningApp{App: a, exited: exited}
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
	case <-a.Processor().Ready():
	case err := <-done:
		t.Fatalf("instance stopped before joining the group: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("instance did not join the group within 60s")
	}
	return ra
}

// checkRunning fails the test when the instance has stopped on its own.
func (a *runningApp) checkRunning(t *testing.T) {
	t.Helper()
	select {
	case <-a.exited:
		t.Fatalf("instance exited: %v", a.stop())
	default:
	}
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

// requireEnv returns the environment variable name, or skips the test with
// one line saying why (and fails it under CI=true, where make test must have
// started the server).
func requireEnv(t *testing.T, name, what string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		msg := name + " not set: no " + what + " to test against (make test or deploy/local/services up starts one)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: required)")
		}
		t.Skip(msg)
	}
	return v
}

// servicesScript runs deploy/local/services with args and returns its
// standard output; the script's messages go to the test log.
func servicesScript(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "../deploy/local/services", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if s := strings.TrimSpace(stderr.String()); s != "" {
		t.Logf("services %s: %s", strings.Join(args, " "), s)
	}
	if err != nil {
		return string(out), fmt.Errorf("cannot run deploy/local/services %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// esServer is the Elasticsearch node of PIPETEL_TEST_ELASTICSEARCH.
type esServer struct{ url string }

// testElasticsearch returns the node and holds the shared lock on it until
// the test ends.
func testElasticsearch(t *testing.T) esServer {
	t.Helper()
	es := esServer{url: strings.TrimRight(requireEnv(t, "PIPETEL_TEST_ELASTICSEARCH", "Elasticsearch node"), "/")}
	lockElasticsearch(t, es.url, false)
	return es
}

// sink is the Elasticsearch section of a test instance: a unique index
// prefix, whose indices and template are deleted when the test ends.
func (es esServer) sink(t *testing.T) app.ElasticsearchSink {
	t.Helper()
	prefix := strings.ToLower(testbroker.Name(t, "es"))
	t.Cleanup(func() {
		es.do(t, "DELETE", "/"+prefix+"-*?expand_wildcards=all")
		es.do(t, "DELETE", "/_index_template/"+prefix)
	})
	return app.ElasticsearchSink{Enabled: true, ElasticsearchConfig: sinks.ElasticsearchConfig{
		Hosts: []string{es.url}, IndexPrefix: prefix, Compress: true,
		OpenSearch: os.Getenv("PIPETEL_TEST_ELASTICSEARCH_FLAVOR") == "opensearch",
	}}
}

// do sends one request; status 0 means no response (the node is down).
func (es esServer) do(t *testing.T, method, path string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, es.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// count refreshes the indices of pattern and counts their documents.
func (es esServer) count(t *testing.T, pattern string) int {
	t.Helper()
	if st, body := es.do(t, "POST", "/"+pattern+"/_refresh?allow_no_indices=true"); st != http.StatusOK {
		t.Fatalf("refresh %s: %d %s", pattern, st, body)
	}
	st, body := es.do(t, "GET", "/"+pattern+"/_count?allow_no_indices=true")
	var c struct{ Count *int }
	if err := json.Unmarshal(body, &c); st != http.StatusOK || err != nil || c.Count == nil {
		t.Fatalf("count %s: %d %s", pattern, st, body)
	}
	return *c.Count
}

// promServer is the Prometheus of PIPETEL_TEST_PROMETHEUS (basic auth).
type promServer struct{ url, user, password, targets string }

func testPrometheus(t *testing.T) promServer {
	t.Helper()
	return promServer{
		url:      strings.TrimRight(requireEnv(t, "PIPETEL_TEST_PROMETHEUS", "Prometheus"), "/"),
		user:     os.Getenv("PIPETEL_TEST_PROMETHEUS_USER"),
		password: os.Getenv("PIPETEL_TEST_PROMETHEUS_PASSWORD"),
		targets:  os.Getenv("PIPETEL_TEST_PROMETHEUS_TARGETS"),
	}
}

// query evaluates an instant PromQL query whose result is at most one
// sample; ok is false when it has none.
func (p promServer) query(t *testing.T, expr string) (v float64, ok bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", p.url+"/api/v1/query?query="+url.QueryEscape(expr), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(p.user, p.password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("query %s: %v", expr, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		Status string
		Data   struct {
			ResultType string
			Result     []struct {
				Value [2]any
			}
		}
	}
	if err := json.Unmarshal(body, &r); err != nil || resp.StatusCode != http.StatusOK || r.Status != "success" {
		t.Fatalf("query %s: %d %s", expr, resp.StatusCode, body)
	}
	switch len(r.Data.Result) {
	case 0:
		return 0, false
	case 1:
		s, _ := r.Data.Result[0].Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("query %s: value %q: %v", expr, s, err)
		}
		return v, true
	}
	t.Fatalf("query %s: %d samples, want at most 1: %s", expr, len(r.Data.Result), body)
	return 0, false
}

// waitQuery polls expr until it has the value want.
func (p promServer) waitQuery(t *testing.T, timeout time.Duration, expr string, want float64) {
	t.Helper()
	waitFor(t, timeout, expr+" == "+fmt.Sprint(want), func() (bool, string) {
		v, ok := p.query(t, expr)
		return ok && v == want, fmt.Sprintf("value %v (present %v)", v, ok)
	})
}

// heapInuse is the process' heap in use after a collection, in bytes.
func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// lockElasticsearch holds a lock on the node at url until the test ends:
// shared by tests that use the node, exclusive for a test that stops it, so
// that an outage test never stops the node under another test, also one of
// another package (sinks takes the same lock file).
func lockElasticsearch(t *testing.T, url string, exclusive bool) {
	t.Helper()
	sum := sha256.Sum256([]byte(url))
	path := filepath.Join(os.TempDir(), fmt.Sprintf("pipetel-test-elasticsearch-%x.lock", sum[:6]))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("cannot open lock %q: %v", path, err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		t.Fatalf("cannot lock %q: %v", path, err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock
}
