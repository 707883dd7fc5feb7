package sinks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/schemas"
)

// decodeWriteRequest decodes a remote-write 1.0 WriteRequest; it fails the
// test on anything it does not expect.
func decodeWriteRequest(b []byte) ([]rwSeries, error) {
	var out []rwSeries
	field := func(b []byte) (protowire.Number, protowire.Type, []byte, int, error) {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, 0, nil, 0, protowire.ParseError(n)
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return 0, 0, nil, 0, protowire.ParseError(m)
		}
		return num, typ, b[n : n+m], n + m, nil
	}
	for len(b) > 0 {
		num, typ, v, n, err := field(b)
		if err != nil {
			return nil, err
		}
		b = b[n:]
		if num != 1 || typ != protowire.BytesType {
			return nil, fmt.Errorf("WriteRequest field %d type %d", num, typ)
		}
		ts, _ := protowire.ConsumeBytes(v)
		var s rwSeries
		samples := 0
		for len(ts) > 0 {
			num, typ, v, n, err := field(ts)
			if err != nil {
				return nil, err
			}
			ts = ts[n:]
			inner, _ := protowire.ConsumeBytes(v)
			switch {
			case num == 1 && typ == protowire.BytesType:
				var l rwLabel
				for len(inner) > 0 {
					num, _, v, n, err := field(inner)
					if err != nil {
						return nil, err
					}
					inner = inner[n:]
					str, _ := protowire.ConsumeString(v)
					switch num {
					case 1:
						l.Name = str
					case 2:
						l.Value = str
					default:
						return nil, fmt.Errorf("Label field %d", num)
					}
				}
				s.Labels = append(s.Labels, l)
			case num == 2 && typ == protowire.BytesType:
				samples++
				for len(inner) > 0 {
					num, typ, v, n, err := field(inner)
					if err != nil {
						return nil, err
					}
					inner = inner[n:]
					switch {
					case num == 1 && typ == protowire.Fixed64Type:
						u, _ := protowire.ConsumeFixed64(v)
						s.Value = math.Float64frombits(u)
					case num == 2 && typ == protowire.VarintType:
						u, _ := protowire.ConsumeVarint(v)
						s.Timestamp = int64(u)
					default:
						return nil, fmt.Errorf("Sample field %d type %d", num, typ)
					}
				}
			default:
				return nil, fmt.Errorf("TimeSeries field %d type %d", num, typ)
			}
		}
		if samples != 1 {
			return nil, fmt.Errorf("series with %d samples, want 1", samples)
		}
		out = append(out, s)
	}
	return out, nil
}

// render writes a series as {name="value",...} value @timestamp, labels in
// wire order.
func render(s rwSeries) string {
	var ls []string
	for _, l := range s.Labels {
		ls = append(ls, fmt.Sprintf("%s=%q", l.Name, l.Value))
	}
	return fmt.Sprintf("{%s} %v @%d", strings.Join(ls, ","), s.Value, s.Timestamp)
}

// receiver is a remote-write endpoint answering statuses[n] to request n
// (204 past the end).
type receiver struct {
	srv      *httptest.Server
	statuses []int
	body     string

	mu   sync.Mutex
	reqs [][]rwSeries
	errs []string
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	t.Helper()
	r := &receiver{statuses: statuses}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		defer r.mu.Unlock()
		n := len(r.reqs)
		var problems []string
		for h, want := range map[string]string{
			"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf", "X-Prometheus-Remote-Write-Version": "0.1.0",
		} {
			if got := req.Header.Get(h); got != want {
				problems = append(problems, fmt.Sprintf("header %s = %q, want %q", h, got, want))
			}
		}
		if u, p, ok := req.BasicAuth(); !ok || u != "123456" || p != "glc_secret" {
			problems = append(problems, fmt.Sprintf("basic auth %q %v", u, ok))
		}
		compressed, _ := io.ReadAll(req.Body)
		raw, err := snappy.Decode(nil, compressed)
		if err != nil {
			problems = append(problems, "snappy: "+err.Error())
		}
		series, err := decodeWriteRequest(raw)
		if err != nil {
			problems = append(problems, "protobuf: "+err.Error())
		}
		r.reqs = append(r.reqs, series)
		r.errs = append(r.errs, problems...)
		status := http.StatusNoContent
		if n < len(r.statuses) {
			status = r.statuses[n]
		}
		w.WriteHeader(status)
		io.WriteString(w, r.body)
	}))
	t.Cleanup(func() {
		r.srv.Close()
		for _, p := range r.errs {
			t.Errorf("receiver: %s", p)
		}
	})
	return r
}

func (r *receiver) requests() [][]rwSeries {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

// testNow stamps the samples of the remote-write tests: whole seconds, so
// the last-success gauge prints exactly.
var testNow = testclock.Now().Truncate(time.Second)

func newTestGrafana(t *testing.T, r *receiver, cfg GrafanaCloudConfig, opts ...Option) *GrafanaCloud {
	t.Helper()
	cfg.Endpoint = r.srv.URL + "/api/prom/push"
	cfg.InstanceID, cfg.APIKey = "123456", "glc_secret"
	if cfg.InstanceLabel == "" {
		cfg.InstanceLabel = "it-1"
	}
	cfg.Metrics.DurationBuckets = []float64{1}
	cfg.Metrics.LatencyBuckets = []float64{0.1}
	opts = append([]Option{WithRetry(3, time.Millisecond, 2*time.Millisecond), WithClock(func() time.Time { return testNow })}, opts...)
	g, err := NewGrafanaCloud(cfg, opts...)
	if err != nil {
		t.Fatalf("NewGrafanaCloud: %v", err)
	}
	ctx := context.Background()
	_ = g.PublishEvents(ctx, []schemas.EventMetric{
		{TaskID: "1", EventName: "load", Status: schemas.StatusCompleted, DurationSeconds: fp(0.5), RetryCount: 2},
		{TaskID: "2", EventName: "load", Status: schemas.StatusTimedOut, RetryCount: 1},
	})
	_ = g.PublishNetwork(ctx, []schemas.NetworkMetric{
		{TaskID: "1", OpID: "a", Operation: "query", Status: schemas.StatusCompleted, LatencySeconds: fp(0.05), BytesSent: 10, BytesReceived: 20},
	})
	return g
}

var wantPushed = []string{
	`{__name__="event_duration_seconds_bucket",event_name="load",instance="it-1",le="1",status="completed"} 1`,
	`{__name__="event_duration_seconds_bucket",event_name="load",instance="it-1",le="+Inf",status="completed"} 1`,
	`{__name__="event_duration_seconds_sum",event_name="load",instance="it-1",status="completed"} 0.5`,
	`{__name__="event_duration_seconds_count",event_name="load",instance="it-1",status="completed"} 1`,
	`{__name__="event_retries_total",event_name="load",instance="it-1"} 3`,
	`{__name__="events_total",event_name="load",instance="it-1",status="completed"} 1`,
	`{__name__="events_total",event_name="load",instance="it-1",status="timed_out"} 1`,
	`{__name__="network_bytes_total",direction="received",instance="it-1",operation="query"} 20`,
	`{__name__="network_bytes_total",direction="sent",instance="it-1",operation="query"} 10`,
	`{__name__="network_latency_seconds_bucket",instance="it-1",le="0.1",operation="query"} 1`,
	`{__name__="network_latency_seconds_bucket",instance="it-1",le="+Inf",operation="query"} 1`,
	`{__name__="network_latency_seconds_sum",instance="it-1",operation="query"} 0.05`,
	`{__name__="network_latency_seconds_count",instance="it-1",operation="query"} 1`,
	`{__name__="network_operations_total",instance="it-1",operation="query",status="completed"} 1`,
}

func TestGrafanaCloudPushSeries(t *testing.T) {
	r := newReceiver(t)
	g := newTestGrafana(t, r, GrafanaCloudConfig{MaxSeriesPerRequest: 5})
	for range 2 {
		if err := g.Push(context.Background()); err != nil {
			t.Fatalf("Push: %v", err)
		}
	}
	reqs := r.requests()
	// 14 series in requests of at most 5, twice.
	if got := fmt.Sprint(len(reqs)); got != "6" {
		t.Fatalf("%s requests, want 6", got)
	}
	wantTS := testNow.UnixMilli()
	for push := range 2 {
		var got []string
		for _, req := range reqs[push*3 : push*3+3] {
			for _, s := range req {
				got = append(got, render(s))
			}
		}
		if len(reqs[push*3]) != 5 || len(reqs[push*3+1]) != 5 || len(reqs[push*3+2]) != 4 {
			t.Errorf("push %d: request sizes %d %d %d, want 5 5 4", push, len(reqs[push*3]), len(reqs[push*3+1]), len(reqs[push*3+2]))
		}
		// The clock stands still: the second push is 1 ms later anyway.
		ts := fmt.Sprintf(" @%d", wantTS+int64(push))
		var want []string
		for _, w := range wantPushed {
			want = append(want, w+ts)
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("push %d series:\n%s\nwant:\n%s", push, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

func TestGrafanaCloudPushErrors(t *testing.T) {
	tests := []struct {
		name          string
		statuses      []int
		wantRequests  int
		wantErr       bool
		wantPermanent bool
		wantAuth      bool
		wantText      string
	}{
		{name: "204", statuses: nil, wantRequests: 1},
		{name: "429 then 204", statuses: []int{429}, wantRequests: 2},
		{name: "500 503 then 204", statuses: []int{500, 503}, wantRequests: 3},
		{name: "503 until attempts run out", statuses: []int{503, 503, 503, 503}, wantRequests: 3, wantErr: true, wantText: "HTTP 503"},
		{name: "401", statuses: []int{401}, wantRequests: 1, wantErr: true, wantPermanent: true, wantAuth: true, wantText: "authentication failed: HTTP 401"},
		{name: "400", statuses: []int{400}, wantRequests: 1, wantErr: true, wantPermanent: true, wantText: "HTTP 400 Bad Request: out of order sample"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReceiver(t, tt.statuses...)
			if len(tt.statuses) > 0 && tt.statuses[0] == 400 {
				r.body = "out of order sample\n"
			}
			g := newTestGrafana(t, r, GrafanaCloudConfig{})
			err := g.Push(context.Background())
			if n := len(r.requests()); n != tt.wantRequests {
				t.Errorf("%d requests, want %d", n, tt.wantRequests)
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("Push error %v, want error %v", err, tt.wantErr)
			}
			if err == nil {
				return
			}
			if got := errors.Is(err, ErrPermanent); got != tt.wantPermanent {
				t.Errorf("Is(ErrPermanent) = %v, want %v", got, tt.wantPermanent)
			}
			if got := errors.Is(err, ErrAuth); got != tt.wantAuth {
				t.Errorf("Is(ErrAuth) = %v, want %v", got, tt.wantAuth)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not contain %q", err, tt.wantText)
			}
			if strings.Contains(err.Error(), "glc_secret") {
				t.Errorf("error %q shows the api key", err)
			}
		})
	}
}

func TestGrafanaCloudUnreachable(t *testing.T) {
	r := newReceiver(t)
	g := newTestGrafana(t, r, GrafanaCloudConfig{})
	r.srv.Close()
	err := g.Push(context.Background())
	var he *HTTPError
	if !errors.As(err, &he) || he.StatusCode != 0 || !he.Retryable() {
		t.Errorf("Push to a closed server: %v, want a retryable *HTTPError without status", err)
	}
}

func TestGrafanaCloudPublishNeverFails(t *testing.T) {
	r := newReceiver(t)
	g := newTestGrafana(t, r, GrafanaCloudConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.PublishEvents(ctx, []schemas.EventMetric{{EventName: "load", Status: schemas.StatusFailed, RetryCount: 4}}); err != nil {
		t.Errorf("PublishEvents: %v", err)
	}
	if err := g.PublishNetwork(ctx, nil); err != nil {
		t.Errorf("PublishNetwork: %v", err)
	}
	if n := len(r.requests()); n != 0 {
		t.Errorf("publishing sent %d requests, want 0", n)
	}
}

func TestGrafanaCloudRun(t *testing.T) {
	// Stopped at once: exactly the final push.
	r := newReceiver(t)
	g := newTestGrafana(t, r, GrafanaCloudConfig{PushInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := len(r.requests()); n != 1 {
		t.Errorf("%d requests, want 1 (the final push)", n)
	}

	// Pushing every 5ms with a real clock: timestamps strictly increase.
	r = newReceiver(t)
	g = newTestGrafana(t, r, GrafanaCloudConfig{PushInterval: 5 * time.Millisecond}, WithClock(time.Now))
	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(r.requests()) < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	reqs := r.requests()
	if len(reqs) < 4 {
		t.Fatalf("%d requests, want at least 3 pushes and the final one", len(reqs))
	}
	for i := 1; i < len(reqs); i++ {
		if reqs[i][0].Timestamp <= reqs[i-1][0].Timestamp {
			t.Errorf("push %d timestamp %d not above %d", i, reqs[i][0].Timestamp, reqs[i-1][0].Timestamp)
		}
	}
}

func TestGrafanaCloudConfigValidate(t *testing.T) {
	ok := GrafanaCloudConfig{Endpoint: "https://prometheus-prod.grafana.net/api/prom/push", InstanceID: "1", APIKey: "k"}
	f := func(mod func(*GrafanaCloudConfig), want string) {
		t.Helper()
		c := ok
		mod(&c)
		err := c.Validate()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("Validate() = %q, want %q", got, want)
		}
	}
	f(func(*GrafanaCloudConfig) {}, "")
	f(func(c *GrafanaCloudConfig) { c.InstanceID, c.APIKey = "", "" }, "")
	f(func(c *GrafanaCloudConfig) { c.Endpoint = "" },
		`sinks.grafana_cloud.endpoint: got "", expected an http:// or https:// remote-write URL such as https://<stack>/api/prom/push`)
	f(func(c *GrafanaCloudConfig) { c.Endpoint = "https://1:k@x/api/prom/push" },
		`sinks.grafana_cloud.endpoint: got "https://1:xxxxx@x/api/prom/push", expected no credentials in the URL: use instance_id and api_key`)
	f(func(c *GrafanaCloudConfig) { c.APIKey = "" },
		"sinks.grafana_cloud.instance_id/api_key: got one of them, expected both set or both empty")
	f(func(c *GrafanaCloudConfig) { c.PushInterval = -1 },
		"sinks.grafana_cloud.push_interval: got -1ns, expected 0 (default 15s) or more")
	f(func(c *GrafanaCloudConfig) { c.MaxSeriesPerRequest = -1 },
		"sinks.grafana_cloud.max_series_per_request: got -1, expected 0 (default 2000) or more")
	f(func(c *GrafanaCloudConfig) { c.Timeout = -time.Second },
		"sinks.grafana_cloud.timeout: got -1s, expected 0 (default 30s) or more")
	f(func(c *GrafanaCloudConfig) { c.Metrics.NativeHistograms = true },
		"sinks.grafana_cloud.metrics.native_histograms: got true, expected false (remote write 1.0 carries classic histograms only)")
	f(func(c *GrafanaCloudConfig) { c.Metrics.MaxHosts = -2 },
		"sinks.grafana_cloud.metrics.max_hosts: got -2, expected 0 (default 100) or more")

	g, err := NewGrafanaCloud(ok)
	if err != nil {
		t.Fatal(err)
	}
	c := g.Config()
	if c.PushInterval != DefaultPushInterval || c.MaxSeriesPerRequest != DefaultMaxSeriesPerRequest || c.Timeout != DefaultPushTimeout ||
		!strings.HasSuffix(c.InstanceLabel, fmt.Sprintf("-%d", os.Getpid())) {
		t.Errorf("defaults not filled: %v", c)
	}
}

func TestGrafanaCloudConfigYAMLAndString(t *testing.T) {
	in := `
endpoint: https://prometheus-prod.grafana.net/api/prom/push
instance_id: "123456"
api_key: glc_secret
push_interval: 30s
max_series_per_request: 500
instance_label: worker-1
timeout: 5s
metrics:
  host_label: true
  max_hosts: 10
`
	var cfg GrafanaCloudConfig
	if err := yaml.Unmarshal([]byte(in), &cfg); err != nil {
		t.Fatal(err)
	}
	want := GrafanaCloudConfig{Endpoint: "https://prometheus-prod.grafana.net/api/prom/push", InstanceID: "123456", APIKey: "glc_secret",
		PushInterval: 30 * time.Second, MaxSeriesPerRequest: 500, InstanceLabel: "worker-1", Timeout: 5 * time.Second,
		Metrics: PrometheusConfig{HostLabel: true, MaxHosts: 10}}
	if fmt.Sprintf("%#v", cfg) != fmt.Sprintf("%#v", want) {
		t.Errorf("decoded %#v\nwant %#v", cfg, want)
	}
	if s := fmt.Sprintf("%v %+v %s", cfg, cfg, cfg); strings.Contains(s, "glc_secret") {
		t.Errorf("printed config shows the api key: %s", s)
	}
}

func TestRemoteWriteDropsEmptyLabels(t *testing.T) {
	r := newReceiver(t)
	g := newTestGrafana(t, r, GrafanaCloudConfig{})
	g2, err := NewGrafanaCloud(g.Config(), WithClock(func() time.Time { return testNow }))
	if err != nil {
		t.Fatal(err)
	}
	_ = g2.PublishEvents(context.Background(), []schemas.EventMetric{{Status: schemas.StatusFailed}})
	if err := g2.Push(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range r.requests()[0] {
		got = append(got, render(s))
	}
	want := []string{
		`{__name__="event_retries_total",instance="it-1"} 0 @` + strconv.FormatInt(testNow.UnixMilli(), 10),
		`{__name__="events_total",instance="it-1",status="failed"} 1 @` + strconv.FormatInt(testNow.UnixMilli(), 10),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("series:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestGrafanaCloudErrorsHideTheQuery: an endpoint's query string (which can
// carry a token) does not appear in the error of a failed push.
func TestGrafanaCloudErrorsHideTheQuery(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: every push fails to connect
	cfg := GrafanaCloudConfig{Endpoint: "http://" + addr + "/api/prom/push?token=s3cret", InstanceLabel: "it-1"}
	cfg.Metrics.DurationBuckets, cfg.Metrics.LatencyBuckets = []float64{1}, []float64{0.1}
	g, err := NewGrafanaCloud(cfg, WithRetry(1, time.Millisecond, time.Millisecond), WithClock(func() time.Time { return testNow }))
	if err != nil {
		t.Fatal(err)
	}
	_ = g.PublishEvents(context.Background(), []schemas.EventMetric{{Status: schemas.StatusFailed}})
	err = g.Push(context.Background())
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "/api/prom/push?REDACTED") {
		t.Fatalf("push error %v: want a connection error naming the endpoint without its query", err)
	}
}
