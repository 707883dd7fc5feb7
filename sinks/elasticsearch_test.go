package sinks

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/pipetel/pipetel/schemas"
)

// esRequest is one request the fake Elasticsearch received.
type esRequest struct {
	method, path, query string
	header              http.Header
	body                string
}

// lines splits an NDJSON body.
func (r esRequest) lines() []string {
	return strings.Split(strings.TrimSuffix(r.body, "\n"), "\n")
}

// fakeES is an httptest server that answers with respond(n, request), n
// counting requests from 0, and sends the product header unless noProduct.
type fakeES struct {
	srv       *httptest.Server
	noProduct bool
	discard   bool // keep no requests (benchmarks)
	respond   func(n int, r esRequest) (int, string)

	mu   sync.Mutex
	reqs []esRequest
}

func newFakeES(t testing.TB, respond func(n int, r esRequest) (int, string)) *fakeES {
	t.Helper()
	f := &fakeES{respond: respond}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		data, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req := esRequest{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, header: r.Header.Clone(), body: string(data)}
		f.mu.Lock()
		n := len(f.reqs)
		if !f.discard {
			f.reqs = append(f.reqs, req)
		}
		f.mu.Unlock()
		status, resp := f.respond(n, req)
		if !f.noProduct {
			w.Header().Set("X-Elastic-Product", "Elasticsearch")
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, resp)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeES) requests() []esRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]esRequest(nil), f.reqs...)
}

// bulkItems answers a bulk request: item i gets statuses[i] and, for
// statuses of 300 or more, an error of type reasons[i] (when given).
func bulkItems(r esRequest, statuses ...int) string {
	lines := r.lines()
	var items []string
	for i := 0; i+1 < len(lines); i += 2 {
		var action map[string]bulkAction
		_ = json.Unmarshal([]byte(lines[i]), &action)
		st := statuses[i/2]
		item := fmt.Sprintf(`{"index":{"_index":%q,"_id":%q,"status":%d`, action["index"].Index, action["index"].ID, st)
		switch {
		case st == 429:
			item += `,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution"}`
		case st == 400:
			item += `,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [retry_count] of type [integer]","caused_by":{"type":"number_format_exception","reason":"For input string: \"x\""}}`
		case st >= 500:
			item += `,"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"}`
		}
		items = append(items, item+"}}")
	}
	return `{"took":3,"errors":true,"items":[` + strings.Join(items, ",") + `]}`
}

func newTestES(t *testing.T, f *fakeES, cfg ElasticsearchConfig, opts ...Option) *Elasticsearch {
	t.Helper()
	cfg.Hosts = []string{f.srv.URL}
	opts = append([]Option{WithRetry(3, time.Millisecond, 2*time.Millisecond)}, opts...)
	e, err := NewElasticsearch(cfg, opts...)
	if err != nil {
		t.Fatalf("NewElasticsearch: %v", err)
	}
	return e
}

func testEvents(t *testing.T) []schemas.EventMetric {
	pid := int64(42)
	return []schemas.EventMetric{
		{TaskID: "t1", EventName: "load", PipelineID: "p1", ProcessID: &pid,
			StartTime: tp(t, "2024-03-01T23:59:59.5Z"), EndTime: tp(t, "2024-03-02T00:00:01.5Z"),
			DurationSeconds: fp(2), Status: schemas.StatusCompleted, RetryCount: 1},
		// Local time after midnight is still March 1st in UTC.
		{TaskID: "t2", EventName: "load", PipelineID: "p1",
			StartTime: tp(t, "2024-03-02T01:30:00+02:00"), Status: schemas.StatusTimedOut},
		{TaskID: "t3", EventName: "save", EndTime: tp(t, "2024-03-05T10:00:00Z"),
			Status: schemas.StatusOrphan, Error: "no start"},
	}
}

var testEventLines = []string{
	`{"index":{"_index":"event-pipeline-metrics-events-2024.03.01","_id":"t1"}}`,
	`{"task_id":"t1","event_name":"load","pipeline_id":"p1","process_id":42,"start_time":"2024-03-01T23:59:59.5Z","end_time":"2024-03-02T00:00:01.5Z","duration_seconds":2,"status":"completed","error":"","retry_count":1,"@timestamp":"2024-03-02T00:00:01.5Z","metric_type":"event"}`,
	`{"index":{"_index":"event-pipeline-metrics-events-2024.03.01","_id":"t2"}}`,
	`{"task_id":"t2","event_name":"load","pipeline_id":"p1","process_id":null,"start_time":"2024-03-02T01:30:00+02:00","end_time":null,"duration_seconds":null,"status":"timed_out","error":"","retry_count":0,"@timestamp":"2024-03-01T23:30:00Z","metric_type":"event"}`,
	`{"index":{"_index":"event-pipeline-metrics-events-2024.03.05","_id":"t3"}}`,
	`{"task_id":"t3","event_name":"save","pipeline_id":"","process_id":null,"start_time":null,"end_time":"2024-03-05T10:00:00Z","duration_seconds":null,"status":"orphan","error":"no start","retry_count":0,"@timestamp":"2024-03-05T10:00:00Z","metric_type":"event"}`,
}

func checkLines(t *testing.T, got esRequest, want []string) {
	t.Helper()
	lines := got.lines()
	if len(lines) != len(want) {
		t.Fatalf("request has %d lines, want %d:\n%s", len(lines), len(want), got.body)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d:\n got %s\nwant %s", i, lines[i], want[i])
		}
	}
}

func TestElasticsearchPublishEventsOK(t *testing.T) {
	for _, compress := range []bool{false, true} {
		f := newFakeES(t, func(_ int, r esRequest) (int, string) { return 200, bulkItems(r, 201, 201, 200) })
		e := newTestES(t, f, ElasticsearchConfig{Compress: compress, Username: "elastic", Password: "s3cret"})
		if err := e.PublishEvents(context.Background(), testEvents(t)); err != nil {
			t.Fatalf("compress=%v: PublishEvents: %v", compress, err)
		}
		reqs := f.requests()
		if len(reqs) != 1 {
			t.Fatalf("compress=%v: %d requests, want 1", compress, len(reqs))
		}
		r := reqs[0]
		if r.method != "POST" || r.path != "/_bulk" {
			t.Errorf("request %s %s, want POST /_bulk", r.method, r.path)
		}
		if got, want := r.header.Get("Content-Encoding") == "gzip", compress; got != want {
			t.Errorf("gzip = %v, want %v", got, want)
		}
		if u, p, ok := (&http.Request{Header: r.header}).BasicAuth(); !ok || u != "elastic" || p != "s3cret" {
			t.Errorf("basic auth = %q, %q, %v", u, p, ok)
		}
		checkLines(t, r, testEventLines)
	}
}

func TestElasticsearchPublishNetwork(t *testing.T) {
	f := newFakeES(t, func(_ int, r esRequest) (int, string) { return 200, bulkItems(r, 201) })
	e := newTestES(t, f, ElasticsearchConfig{IndexPrefix: "pt", APIKey: "a2V5"})
	err := e.PublishNetwork(context.Background(), []schemas.NetworkMetric{{
		TaskID: "t1", OpID: "o1", Host: "db", Port: 5432, Operation: "query",
		StartTime: tp(t, "2024-12-31T23:59:59Z"), EndTime: tp(t, "2025-01-01T00:00:00.25Z"),
		LatencySeconds: fp(1.25), BytesSent: 10, BytesReceived: 2048, Status: schemas.StatusCompleted,
	}})
	if err != nil {
		t.Fatalf("PublishNetwork: %v", err)
	}
	r := f.requests()[0]
	if got := r.header.Get("Authorization"); got != "APIKey a2V5" {
		t.Errorf("Authorization = %q, want APIKey a2V5", got)
	}
	checkLines(t, r, []string{
		`{"index":{"_index":"pt-network-2024.12.31","_id":"t1/o1"}}`,
		`{"task_id":"t1","op_id":"o1","host":"db","port":5432,"operation":"query","start_time":"2024-12-31T23:59:59Z","end_time":"2025-01-01T00:00:00.25Z","latency_seconds":1.25,"bytes_sent":10,"bytes_received":2048,"status":"completed","error":"","@timestamp":"2025-01-01T00:00:00.25Z","metric_type":"network"}`,
	})
}

func TestElasticsearchItemRetries(t *testing.T) {
	// Partial 429, then the retried item succeeds: one call, two requests,
	// the second carrying only the refused document.
	f := newFakeES(t, func(n int, r esRequest) (int, string) {
		if n == 0 {
			return 200, bulkItems(r, 201, 429, 201)
		}
		return 200, bulkItems(r, 200)
	})
	e := newTestES(t, f, ElasticsearchConfig{})
	if err := e.PublishEvents(context.Background(), testEvents(t)); err != nil {
		t.Fatalf("PublishEvents: %v", err)
	}
	reqs := f.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	checkLines(t, reqs[1], testEventLines[2:4])
}

func TestElasticsearchItemErrors(t *testing.T) {
	const mappingReason = `mapper_parsing_exception: failed to parse field [retry_count] of type [integer] (caused by number_format_exception: For input string: "x")`
	tests := []struct {
		name         string
		statuses     [][]int // per request
		wantRequests int
		wantRejected []Rejected
		wantRetry    []Rejected
	}{
		{
			name:         "429 until attempts run out",
			statuses:     [][]int{{201, 429, 201}, {429}, {429}},
			wantRequests: 3,
			wantRetry:    []Rejected{{ID: "t2", Status: 429, Reason: "es_rejected_execution_exception: rejected execution"}},
		},
		{
			name:         "400 mapping error",
			statuses:     [][]int{{201, 400, 201}},
			wantRequests: 1,
			wantRejected: []Rejected{{ID: "t2", Status: 400, Reason: mappingReason}},
		},
		{
			name:         "400 and 503 at once, 503 stays",
			statuses:     [][]int{{400, 503, 201}, {503}, {503}},
			wantRequests: 3,
			wantRejected: []Rejected{{ID: "t1", Status: 400, Reason: mappingReason}},
			wantRetry:    []Rejected{{ID: "t2", Status: 503, Reason: "unavailable_shards_exception: primary shard is not active"}},
		},
		{
			name:         "503 then 400 on retry",
			statuses:     [][]int{{201, 201, 503}, {400}},
			wantRequests: 2,
			wantRejected: []Rejected{{ID: "t3", Status: 400, Reason: mappingReason}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeES(t, func(n int, r esRequest) (int, string) { return 200, bulkItems(r, tt.statuses[n]...) })
			e := newTestES(t, f, ElasticsearchConfig{})
			err := e.PublishEvents(context.Background(), testEvents(t))
			if n := len(f.requests()); n != tt.wantRequests {
				t.Errorf("%d requests, want %d", n, tt.wantRequests)
			}
			var rej *RejectedError
			var retry *ItemError
			errors.As(err, &rej)
			errors.As(err, &retry)
			if got := itemsOf(rej); fmt.Sprint(got) != fmt.Sprint(tt.wantRejected) {
				t.Errorf("rejected = %+v, want %+v", got, tt.wantRejected)
			}
			if got := itemsOfRetry(retry); fmt.Sprint(got) != fmt.Sprint(tt.wantRetry) {
				t.Errorf("retry = %+v, want %+v", got, tt.wantRetry)
			}
			if rej != nil && rej.Publisher != "elasticsearch" {
				t.Errorf("publisher %q", rej.Publisher)
			}
		})
	}
}

func itemsOf(e *RejectedError) []Rejected {
	if e == nil {
		return nil
	}
	return e.Items
}

func itemsOfRetry(e *ItemError) []Rejected {
	if e == nil {
		return nil
	}
	return e.Items
}

func TestElasticsearchWholeRequestErrors(t *testing.T) {
	tests := []struct {
		name          string
		status        int
		body          string
		wantBad       bool // ErrBadResponse
		wantStatus    int  // *HTTPError with this status
		wantPermanent bool
		wantAuth      bool
	}{
		{name: "no items", status: 200, body: `{"took":1,"errors":false}`, wantBad: true},
		{name: "null items", status: 200, body: `{"items":null}`, wantBad: true},
		{name: "empty items", status: 200, body: `{"items":[]}`, wantBad: true},
		{name: "more items than sent", status: 200, body: `{"items":[{"index":{"status":201}},{"index":{"status":201}},{"index":{"status":201}},{"index":{"status":201}}]}`, wantBad: true},
		{name: "not JSON", status: 200, body: `<html>proxy error</html>`, wantBad: true},
		{name: "empty body", status: 200, body: ``, wantBad: true},
		{name: "item without status", status: 200, body: `{"items":[{"index":{}},{"index":{"status":201}},{"index":{"status":201}}]}`, wantBad: true},
		{name: "item with two actions", status: 200, body: `{"items":[{"index":{"status":201},"create":{"status":201}},{"index":{"status":201}},{"index":{"status":201}}]}`, wantBad: true},
		{name: "item with another id", status: 200, body: `{"items":[{"index":{"_id":"t9","status":201}},{"index":{"status":201}},{"index":{"status":201}}]}`, wantBad: true},
		{name: "500", status: 500, body: `{"error":"boom"}`, wantStatus: 500},
		{name: "429", status: 429, body: `{"error":"circuit_breaking_exception"}`, wantStatus: 429},
		{name: "413", status: 413, body: ``, wantStatus: 413, wantPermanent: true},
		{name: "401", status: 401, body: `{"error":{"type":"security_exception","reason":"unable to authenticate user [elastic]"}}`, wantStatus: 401, wantPermanent: true, wantAuth: true},
		{name: "403", status: 403, body: `{"error":"forbidden"}`, wantStatus: 403, wantPermanent: true, wantAuth: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeES(t, func(int, esRequest) (int, string) { return tt.status, tt.body })
			e := newTestES(t, f, ElasticsearchConfig{Username: "elastic", Password: "hunter2-secret"})
			err := e.PublishEvents(context.Background(), testEvents(t))
			if err == nil {
				t.Fatal("PublishEvents succeeded, want error")
			}
			if n := len(f.requests()); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
			if got := errors.Is(err, ErrBadResponse); got != tt.wantBad {
				t.Errorf("Is(ErrBadResponse) = %v, want %v: %v", got, tt.wantBad, err)
			}
			var he *HTTPError
			if tt.wantStatus != 0 {
				if !errors.As(err, &he) || he.StatusCode != tt.wantStatus {
					t.Fatalf("error %v: want *HTTPError with status %d", err, tt.wantStatus)
				}
				if he.Retryable() == tt.wantPermanent {
					t.Errorf("Retryable() = %v, want %v", he.Retryable(), !tt.wantPermanent)
				}
			}
			if got := errors.Is(err, ErrPermanent); got != tt.wantPermanent {
				t.Errorf("Is(ErrPermanent) = %v, want %v: %v", got, tt.wantPermanent, err)
			}
			if got := errors.Is(err, ErrAuth); got != tt.wantAuth {
				t.Errorf("Is(ErrAuth) = %v, want %v", got, tt.wantAuth)
			}
			if tt.wantAuth && !strings.Contains(err.Error(), "authentication failed") {
				t.Errorf("error %q does not say authentication failed", err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestElasticsearchUnreachable(t *testing.T) {
	f := newFakeES(t, func(int, esRequest) (int, string) { return 200, "" })
	e := newTestES(t, f, ElasticsearchConfig{})
	f.srv.Close()
	err := e.PublishEvents(context.Background(), testEvents(t))
	var he *HTTPError
	if !errors.As(err, &he) || he.StatusCode != 0 || !he.Retryable() || errors.Is(err, ErrPermanent) {
		t.Errorf("error %v: want retryable *HTTPError without status", err)
	}
}

func TestElasticsearchCanceledDuringBackoff(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newFakeES(t, func(_ int, r esRequest) (int, string) { return 200, bulkItems(r, 201, 429, 201) })
	// Cancel once the first response is complete, so that the publisher is
	// waiting to retry when ctx ends.
	cancelAfter := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		res, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		res.Body = io.NopCloser(bytes.NewReader(body))
		cancel()
		return res, err
	})
	e := newTestES(t, f, ElasticsearchConfig{}, WithRetry(5, time.Hour, time.Hour), WithTransport(cancelAfter))
	start := time.Now()
	err := e.PublishEvents(ctx, testEvents(t))
	var retry *ItemError
	if !errors.As(err, &retry) || len(retry.Items) != 1 || retry.Items[0].ID != "t2" {
		t.Errorf("error %v: want *ItemError for t2", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("PublishEvents took %v after cancel", d)
	}
	if n := len(f.requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestElasticsearchLocalRejections(t *testing.T) {
	f := newFakeES(t, func(_ int, r esRequest) (int, string) { return 200, bulkItems(r, 201) })
	e := newTestES(t, f, ElasticsearchConfig{})
	events := testEvents(t)[:1]
	events = append(events, schemas.EventMetric{TaskID: "nt", Status: schemas.StatusOrphan}, schemas.EventMetric{EventName: "x"})
	err := e.PublishEvents(context.Background(), events)
	var rej *RejectedError
	if !errors.As(err, &rej) {
		t.Fatalf("error %v: want *RejectedError", err)
	}
	want := []Rejected{{ID: "nt", Reason: "event has neither start_time nor end_time"}, {Reason: "event has no task_id"}}
	if fmt.Sprint(rej.Items) != fmt.Sprint(want) {
		t.Errorf("rejected %+v, want %+v", rej.Items, want)
	}
	checkLines(t, f.requests()[0], testEventLines[:2])

	// Nothing left to send: no request at all.
	err = e.PublishNetwork(context.Background(), []schemas.NetworkMetric{{TaskID: "a", OpID: "b"}})
	if !errors.As(err, &rej) || len(rej.Items) != 1 || rej.Items[0].ID != "a/b" {
		t.Errorf("error %v: want *RejectedError for a/b", err)
	}
	if err := e.PublishNetwork(context.Background(), nil); err != nil {
		t.Errorf("empty batch: %v", err)
	}
	if n := len(f.requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestElasticsearchOpenSearchMode(t *testing.T) {
	f := newFakeES(t, func(_ int, r esRequest) (int, string) { return 200, bulkItems(r, 201, 201, 201) })
	f.noProduct = true

	e := newTestES(t, f, ElasticsearchConfig{})
	err := e.PublishEvents(context.Background(), testEvents(t))
	if err == nil || !strings.Contains(err.Error(), "opensearch: true") || errors.Is(err, ErrPermanent) {
		t.Errorf("without opensearch mode: error %v, want a retryable product-check error naming opensearch: true", err)
	}

	e = newTestES(t, f, ElasticsearchConfig{OpenSearch: true})
	if err := e.PublishEvents(context.Background(), testEvents(t)); err != nil {
		t.Errorf("with opensearch mode: %v", err)
	}
}

func TestElasticsearchSetup(t *testing.T) {
	f := newFakeES(t, func(int, esRequest) (int, string) { return 200, `{"acknowledged":true}` })
	e := newTestES(t, f, ElasticsearchConfig{IndexPrefix: "pm"})
	if err := e.Setup(context.Background()); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	r := f.requests()[0]
	if r.method != "PUT" || r.path != "/_index_template/pm" {
		t.Errorf("request %s %s, want PUT /_index_template/pm", r.method, r.path)
	}
	var tmpl struct {
		IndexPatterns []string `json:"index_patterns"`
		Priority      int      `json:"priority"`
		Template      struct {
			Mappings struct {
				Properties map[string]struct {
					Type string `json:"type"`
				} `json:"properties"`
			} `json:"mappings"`
		} `json:"template"`
	}
	if err := json.Unmarshal([]byte(r.body), &tmpl); err != nil {
		t.Fatalf("template body: %v", err)
	}
	if fmt.Sprint(tmpl.IndexPatterns) != "[pm-events-* pm-network-*]" || tmpl.Priority != 200 {
		t.Errorf("patterns %v priority %d", tmpl.IndexPatterns, tmpl.Priority)
	}
	wantTypes := map[string]string{
		"@timestamp": "date", "metric_type": "keyword", "task_id": "keyword", "status": "keyword", "error": "text",
		"start_time": "date", "end_time": "date", "event_name": "keyword", "pipeline_id": "keyword",
		"process_id": "long", "duration_seconds": "double", "retry_count": "integer", "op_id": "keyword",
		"host": "keyword", "port": "integer", "operation": "keyword", "latency_seconds": "double",
		"bytes_sent": "long", "bytes_received": "long",
	}
	props := tmpl.Template.Mappings.Properties
	if len(props) != len(wantTypes) {
		t.Errorf("%d mapped fields, want %d", len(props), len(wantTypes))
	}
	for field, want := range wantTypes {
		if got := props[field].Type; got != want {
			t.Errorf("field %s type %q, want %q", field, got, want)
		}
	}

	f = newFakeES(t, func(int, esRequest) (int, string) { return 403, `{"error":"no"}` })
	e = newTestES(t, f, ElasticsearchConfig{})
	if err := e.Setup(context.Background()); !errors.Is(err, ErrAuth) {
		t.Errorf("Setup against 403: %v, want ErrAuth", err)
	}
}

func TestElasticsearchConfigValidate(t *testing.T) {
	ok := ElasticsearchConfig{Hosts: []string{"http://127.0.0.1:9200"}}
	f := func(mod func(*ElasticsearchConfig), want string) {
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
	f(func(*ElasticsearchConfig) {}, "")
	f(func(c *ElasticsearchConfig) { c.Hosts = nil },
		`sinks.elasticsearch.hosts: got none, expected at least one URL such as "http://127.0.0.1:9200"`)
	f(func(c *ElasticsearchConfig) { c.Hosts = []string{"http://a:1", "localhost:9200"} },
		`sinks.elasticsearch.hosts[1]: got "localhost:9200", expected an http:// or https:// URL with a host`)
	f(func(c *ElasticsearchConfig) { c.Hosts = []string{"https://u:pw@es:9200"} },
		`sinks.elasticsearch.hosts[0]: got "https://u:xxxxx@es:9200", expected no credentials in the URL: use username/password or api_key`)
	f(func(c *ElasticsearchConfig) { c.IndexPrefix = "Metrics" },
		`sinks.elasticsearch.index_prefix: got "Metrics", expected up to 200 of a-z, 0-9, '.', '_', '-', starting with a letter or digit`)
	f(func(c *ElasticsearchConfig) { c.Username = "elastic" },
		"sinks.elasticsearch.username/password: got one of them, expected both set or both empty")
	f(func(c *ElasticsearchConfig) { c.Username, c.Password, c.APIKey = "u", "p", "k" },
		"sinks.elasticsearch.api_key/username: got both, expected one way to authenticate")
	f(func(c *ElasticsearchConfig) { c.FlushBytes = -1 },
		"sinks.elasticsearch.flush_bytes: got -1, expected 0 (default 5242880) or more")
	f(func(c *ElasticsearchConfig) { c.FlushInterval = -time.Second },
		"sinks.elasticsearch.flush_interval: got -1s, expected 0 (default 5s) or more")
	f(func(c *ElasticsearchConfig) { c.Timeout = -time.Second },
		"sinks.elasticsearch.timeout: got -1s, expected 0 (default 30s) or more")

	if _, err := NewElasticsearch(ElasticsearchConfig{Hosts: ok.Hosts, CAFile: "/nonexistent/ca.pem"}); err == nil ||
		!strings.Contains(err.Error(), `ca_file "/nonexistent/ca.pem"`) {
		t.Errorf("missing ca_file: %v", err)
	}
}

func TestElasticsearchConfigYAMLAndString(t *testing.T) {
	in := `
hosts: [http://127.0.0.1:19200]
index_prefix: pm
username: elastic
password: hunter2
compress: true
flush_bytes: 1048576
flush_interval: 2s
timeout: 10s
opensearch: true
`
	var cfg ElasticsearchConfig
	if err := yaml.Unmarshal([]byte(in), &cfg); err != nil {
		t.Fatal(err)
	}
	want := ElasticsearchConfig{Hosts: []string{"http://127.0.0.1:19200"}, IndexPrefix: "pm", Username: "elastic",
		Password: "hunter2", Compress: true, FlushBytes: 1 << 20, FlushInterval: 2 * time.Second, Timeout: 10 * time.Second, OpenSearch: true}
	if fmt.Sprintf("%#v", cfg) != fmt.Sprintf("%#v", want) {
		t.Errorf("decoded %#v\nwant %#v", cfg, want)
	}
	if s := fmt.Sprintf("%v %+v %s", cfg, cfg, cfg); strings.Contains(s, "hunter2") {
		t.Errorf("printed config shows the password: %s", s)
	}
	e, err := NewElasticsearch(ElasticsearchConfig{Hosts: cfg.Hosts})
	if err != nil {
		t.Fatal(err)
	}
	if c := e.Config(); c.IndexPrefix != DefaultIndexPrefix || c.FlushBytes != DefaultFlushBytes || c.FlushInterval != DefaultFlushInterval || c.Timeout != DefaultESTimeout {
		t.Errorf("defaults not filled: %v", c)
	}
}
