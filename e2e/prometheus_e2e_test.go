package e2e

import (
	"encoding/json"
	"fmt"
	"github.com/pipetel/pipetel/internal/app"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/pipetel/pipetel/internal/testbroker"
	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/state"
)

// fileTarget is one entry of a Prometheus file_sd targets file.
type fileTarget struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels,omitempty"`
}

// addTarget adds addr, labelled test=name, to the targets file that the
// job "pipetel" of the test Prometheus reads, and removes it when the test
// ends. Other tests' entries are kept; each write is a rename, so
// Prometheus never reads half a file.
func (p promServer) addTarget(t *testing.T, addr, name string) {
	t.Helper()
	if p.targets == "" {
		requireEnv(t, "PIPETEL_TEST_PROMETHEUS_TARGETS", "Prometheus targets file")
	}
	edit := func(change func([]fileTarget) []fileTarget) error {
		var list []fileTarget
		data, err := os.ReadFile(p.targets)
		if err != nil {
			return fmt.Errorf("cannot read targets file %q: %w", p.targets, err)
		}
		if err := json.Unmarshal(data, &list); err != nil {
			return fmt.Errorf("cannot decode targets file %q: %w", p.targets, err)
		}
		list = change(list)
		if list == nil {
			list = []fileTarget{}
		}
		data, err = json.Marshal(list)
		if err != nil {
			return err
		}
		tmp, err := os.CreateTemp(filepath.Dir(p.targets), ".targets-*.json")
		if err != nil {
			return fmt.Errorf("cannot write targets file: %w", err)
		}
		_, werr := tmp.Write(append(data, '\n'))
		if cerr := tmp.Close(); werr == nil {
			werr = cerr
		}
		if werr == nil {
			werr = os.Chmod(tmp.Name(), 0o644)
		}
		if werr == nil {
			werr = os.Rename(tmp.Name(), p.targets)
		}
		if werr != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("cannot write targets file %q: %w", p.targets, werr)
		}
		return nil
	}
	mine := func(ft fileTarget) bool { return ft.Labels["test"] == name }
	t.Cleanup(func() {
		if err := edit(func(l []fileTarget) []fileTarget { return slices.DeleteFunc(l, mine) }); err != nil {
			t.Errorf("cannot remove the test's target: %v", err)
		}
	})
	if err := edit(func(l []fileTarget) []fileTarget {
		return append(slices.DeleteFunc(l, mine), fileTarget{Targets: []string{addr}, Labels: map[string]string{"test": name}})
	}); err != nil {
		t.Fatal(err)
	}
}

// promQuantile is histogram_quantile(q, …) over the classic histogram of
// values with the given upper bounds, computed the way Prometheus does
// (promql/quantile.go, bucketQuantile): find the first bucket whose
// cumulative count reaches the rank q·count and interpolate linearly
// inside it, from 0 for the first bucket; a rank in the +Inf bucket answers
// the highest finite bound.
func promQuantile(q float64, bounds, values []float64) float64 {
	upper := append(slices.Clone(bounds), math.Inf(1))
	cum := make([]float64, len(upper))
	for _, v := range values {
		for i, b := range upper {
			if v <= b {
				cum[i]++
			}
		}
	}
	rank := q * cum[len(cum)-1]
	b := sort.Search(len(cum)-1, func(i int) bool { return cum[i] >= rank })
	if b == len(cum)-1 {
		return upper[len(upper)-2]
	}
	if b == 0 && upper[0] <= 0 {
		return upper[0]
	}
	start, end, count := 0.0, upper[b], cum[b]
	if b > 0 {
		start = upper[b-1]
		count -= cum[b-1]
		rank -= cum[b-1]
	}
	return start + (end-start)*(rank/count)
}

func TestPromQuantile(t *testing.T) {
	f := func(q float64, bounds, values []float64, want float64) {
		t.Helper()
		if got := promQuantile(q, bounds, values); got != want {
			t.Errorf("promQuantile(%v, %v, %v) = %v, want %v", q, bounds, values, got, want)
		}
	}
	f(0.5, []float64{1, 2}, []float64{0.5, 1.5}, 1)          // rank 1 fills the first bucket
	f(0.5, []float64{1, 2}, []float64{1.5, 1.5}, 1.5)        // half-way through (1, 2]
	f(0.25, []float64{1, 2}, []float64{0.1, 0.2, 3, 4}, 0.5) // rank 1 of the first bucket's 2
	f(0.9, []float64{1, 2}, []float64{0.5, 5, 5, 5, 5}, 2)   // rank 4.5 in +Inf: the highest bound
	f(0.5, []float64{1, 2, 4}, []float64{3, 3, 3, 3}, 3)     // rank 2 of 4 in (2, 4]
	f(0.5, []float64{0.5, 1}, []float64{0.5, 0.5}, 0.25)     // first bucket interpolates from 0
	f(1, []float64{1, 2}, []float64{0.5, 1.5, 1.5, 1.5}, 2)  // the top of the last finite bucket
}

// scenarioDurations are the durations, in seconds, of tasks [0, n).
func scenarioDurations(s scenario, n int) []float64 {
	d := make([]float64, n)
	for i := range d {
		d[i] = s.duration(i).Seconds()
	}
	return d
}

// sameFloat compares a value Prometheus computed with the test's own
// computation of it, allowing for the order of float additions.
func sameFloat(got, want float64) bool {
	return math.Abs(got-want) <= 1e-12*math.Max(1, math.Abs(want))
}

// checkSeries checks the finished metrics' series that PromQL sees under
// selector sel (label matchers without braces) for tasks [0, n) of s.
func checkSeries(t *testing.T, prom promServer, sel string, s scenario, n int) {
	t.Helper()
	want := s.expect(n)
	for expr, want := range map[string]float64{
		"sum(events_total{%s})":                             float64(n),
		`sum(events_total{%s,status="failed"})`:             float64(want.failed),
		"sum(event_retries_total{%s})":                      float64(want.retries),
		"sum(event_duration_seconds_count{%s})":             float64(n),
		"sum(network_operations_total{%s})":                 float64(want.ops),
		`sum(network_operations_total{%s,status="failed"})`: float64(want.opsFailed),
		"sum(network_latency_seconds_count{%s})":            float64(want.ops),
	} {
		expr = fmt.Sprintf(expr, sel)
		if got, ok := prom.query(t, expr); !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", expr, got, ok, want)
		}
	}
	durations := scenarioDurations(s, n)
	for _, q := range []float64{0.5, 0.9, 0.99} {
		expr := fmt.Sprintf("histogram_quantile(%v, sum by (le) (event_duration_seconds_bucket{%s}))", q, sel)
		wantQ := promQuantile(q, state.DefaultDurationBuckets, durations)
		got, ok := prom.query(t, expr)
		if !ok || !sameFloat(got, wantQ) {
			t.Errorf("%s = %v (present %v), want %v", expr, got, ok, wantQ)
		} else {
			t.Logf("%s = %v, as computed from the scenario's durations", expr, got)
		}
	}
}

// TestPrometheusScrape has the real Prometheus of PIPETEL_TEST_PROMETHEUS
// scrape an instance's /metrics (state-backed series) and checks what
// PromQL answers.
func TestPrometheusScrape(t *testing.T) {
	prom := testPrometheus(t)
	requireEnv(t, "PIPETEL_TEST_PROMETHEUS_TARGETS", "Prometheus targets file")
	b := testbroker.Start(t)
	tt := newTestTopics(t, b, 4)
	a := startApp(t, testConfig(b, tt, t.TempDir()))
	name := testbroker.Name(t, "scrape")
	prom.addTarget(t, a.Addr(), name)
	sel := fmt.Sprintf(`job="pipetel",test=%q`, name)
	// Prometheus passes target changes on at most every 5 s.
	prom.waitQuery(t, 60*time.Second, "up{"+sel+"}", 1)

	clock := &fakeClock{}
	p := newProducer(t, b, tt, clock)
	s := scenario{prefix: "scrape", base: testclock.Now().Truncate(time.Hour).Add(2 * time.Hour)}
	const n = 1000
	s.emit(t, p, clock, 0, n)
	// Events and network operations are partitions of their own: wait for
	// both streams before checking any figure.
	prom.waitQuery(t, 90*time.Second, "sum(events_total{"+sel+"})", n)
	prom.waitQuery(t, 90*time.Second, "sum(network_operations_total{"+sel+"})", float64(s.expect(n).ops))
	checkSeries(t, prom, sel, s, n)
}

// TestGrafanaCloudEndToEnd pushes an instance's state-backed series with
// remote write to the Prometheus of PIPETEL_TEST_PROMETHEUS, as to Grafana
// Cloud, and reads them back with PromQL; a wrong password is reported on
// /metrics and harms nothing else.
func TestGrafanaCloudEndToEnd(t *testing.T) {
	prom := testPrometheus(t)
	b := testbroker.Start(t)
	tt := newTestTopics(t, b, 4)
	label := testbroker.Name(t, "gc")
	cfg := testConfig(b, tt, t.TempDir())
	cfg.Sinks.GrafanaCloud = app.GrafanaCloudSink{Enabled: true}
	cfg.Sinks.GrafanaCloud.Endpoint = prom.url + "/api/v1/write"
	cfg.Sinks.GrafanaCloud.InstanceID, cfg.Sinks.GrafanaCloud.APIKey = prom.user, prom.password
	cfg.Sinks.GrafanaCloud.PushInterval = time.Second
	cfg.Sinks.GrafanaCloud.InstanceLabel = label
	a := startApp(t, cfg)
	clock := &fakeClock{}
	p := newProducer(t, b, tt, clock)
	s := scenario{prefix: "gc", base: testclock.Now().Truncate(time.Hour).Add(2 * time.Hour)}
	const n = 1000
	s.emit(t, p, clock, 0, n)
	sel := fmt.Sprintf("instance=%q", label)
	// Events and network operations are partitions of their own: wait for
	// both streams before checking any figure.
	prom.waitQuery(t, 90*time.Second, "sum(events_total{"+sel+"})", n)
	prom.waitQuery(t, 90*time.Second, "sum(network_operations_total{"+sel+"})", float64(s.expect(n).ops))
	checkSeries(t, prom, sel, s, n)
	gc := map[string]string{"publisher": "grafanacloud"}
	f := a.scrape(t)
	if sent, failed := sumMetric(f, "pipetel_push_sent_total", gc), sumMetric(f, "pipetel_push_failed_total", gc); sent < 1 || failed != 0 {
		t.Errorf("pipetel_push_sent_total %v, pipetel_push_failed_total %v: want pushes and no failure", sent, failed)
	}
	must(t, a.stop())

	t.Run("wrong password", func(t *testing.T) {
		if prom.user == "" {
			t.Skip("PIPETEL_TEST_PROMETHEUS_USER not set: the Prometheus has no basic auth to refuse")
		}
		tt2 := tt
		tt2.group = testbroker.Name(t, "badauth")
		bad := testbroker.Name(t, "gc")
		cfg := testConfigWith(b, tt2, t.TempDir(), func(c *app.Config) {
			c.Sinks.GrafanaCloud = cfg.Sinks.GrafanaCloud
			c.Sinks.GrafanaCloud.APIKey = "not-" + prom.password
			c.Sinks.GrafanaCloud.InstanceLabel = bad
		})
		a := startApp(t, cfg)
		// The instance goes on: it processes the whole input again (a new
		// group) and serves it, while every push fails.
		waitFor(t, 90*time.Second, "failed pushes counted and every task processed", func() (bool, string) {
			f := a.scrape(t)
			failed := sumMetric(f, "pipetel_push_failed_total", gc)
			sent := sumMetric(f, "pipetel_push_sent_total", gc)
			ev := sumMetric(f, "events_total", nil)
			return failed >= 2 && sent == 0 && ev == n, fmt.Sprintf("push failed %v sent %v events_total %v", failed, sent, ev)
		})
		resp, err := http.Get("http://" + a.Addr() + "/healthz")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("healthz: %v %v", resp, err)
		}
		resp.Body.Close()
		if v, ok := prom.query(t, fmt.Sprintf("count(events_total{instance=%q})", bad)); ok {
			t.Errorf("Prometheus holds %v series pushed with a wrong password", v)
		}
		if err := a.stop(); err != nil {
			t.Errorf("stop after refused pushes: %v, want a clean shutdown", err)
		}
	})
}
