package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/schemas"
)

// TestElasticsearchIntegration runs against the node named by
// PIPETEL_TEST_ELASTICSEARCH (deploy/local/services starts Elasticsearch 7.17
// at http://127.0.0.1:19200); PIPETEL_TEST_ELASTICSEARCH_FLAVOR=opensearch
// selects OpenSearch mode.
func TestElasticsearchIntegration(t *testing.T) {
	addr := os.Getenv("PIPETEL_TEST_ELASTICSEARCH")
	if addr == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("PIPETEL_TEST_ELASTICSEARCH not set: no Elasticsearch node to test against (CI=true: required)")
		}
		t.Skip("PIPETEL_TEST_ELASTICSEARCH not set: no Elasticsearch node to test against (make services starts one)")
	}
	lockElasticsearch(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	prefix := fmt.Sprintf("pipetel-it-%d", time.Now().UnixNano())
	e, err := NewElasticsearch(ElasticsearchConfig{
		Hosts:       []string{addr},
		IndexPrefix: prefix,
		Compress:    true,
		OpenSearch:  os.Getenv("PIPETEL_TEST_ELASTICSEARCH_FLAVOR") == "opensearch",
	})
	if err != nil {
		t.Fatal(err)
	}
	doCtx := func(ctx context.Context, method, path string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := e.client.Perform(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return res.StatusCode, body
	}
	do := func(method, path string) (int, []byte) {
		t.Helper()
		return doCtx(ctx, method, path)
	}
	// Three UTC days ending yesterday: the documents span them.
	base := testclock.Now().Truncate(24 * time.Hour).Add(-3 * 24 * time.Hour)
	day := func(d int) string { return base.Add(time.Duration(d) * 24 * time.Hour).Format("2006.01.02") }
	t.Cleanup(func() {
		// ctx has ended by now.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		do := func(method, path string) { doCtx(ctx, method, path) }
		for _, family := range []string{"events", "network"} {
			for d := range 3 {
				do("DELETE", fmt.Sprintf("/%s-%s-%s?ignore_unavailable=true", prefix, family, day(d)))
			}
		}
		do("DELETE", "/_index_template/"+prefix)
	})

	if err := e.Setup(ctx); err != nil {
		t.Fatalf("Setup: %v", err)
	}

	const nEvents, nNetwork = 500, 200
	events := make([]schemas.EventMetric, nEvents)
	for i := range events {
		start := base.Add(time.Duration(i) * 7 * time.Minute) // spans 3 days
		end := start.Add(1500 * time.Millisecond)
		events[i] = schemas.EventMetric{
			TaskID: fmt.Sprintf("task-%04d", i), EventName: "load", PipelineID: "p1",
			StartTime: &start, EndTime: &end, DurationSeconds: fp(1.5),
			Status: schemas.StatusCompleted, RetryCount: i % 3,
		}
	}
	network := make([]schemas.NetworkMetric, nNetwork)
	for i := range network {
		start := base.Add(time.Duration(i) * 17 * time.Minute)
		end := start.Add(20 * time.Millisecond)
		network[i] = schemas.NetworkMetric{
			TaskID: fmt.Sprintf("task-%04d", i/2), OpID: fmt.Sprintf("op-%d", i%2), Host: "db", Port: 5432,
			Operation: "query", StartTime: &start, EndTime: &end, LatencySeconds: fp(0.02),
			BytesSent: int64(i), BytesReceived: 3_000_000_000, Status: schemas.StatusCompleted,
		}
	}
	publish := func() {
		t.Helper()
		for i := 0; i < nEvents; i += 100 {
			if err := e.PublishEvents(ctx, events[i:i+100]); err != nil {
				t.Fatalf("PublishEvents: %v", err)
			}
		}
		for i := 0; i < nNetwork; i += 100 {
			if err := e.PublishNetwork(ctx, network[i:i+100]); err != nil {
				t.Fatalf("PublishNetwork: %v", err)
			}
		}
		if st, body := do("POST", "/"+prefix+"-*/_refresh"); st != 200 {
			t.Fatalf("refresh: %d %s", st, body)
		}
	}
	count := func(family string) int {
		t.Helper()
		st, body := do("GET", "/"+prefix+"-"+family+"-*/_count")
		var c struct{ Count int }
		if err := json.Unmarshal(body, &c); st != 200 || err != nil {
			t.Fatalf("count %s: %d %s", family, st, body)
		}
		return c.Count
	}
	for round := 1; round <= 2; round++ {
		publish()
		if got := count("events"); got != nEvents {
			t.Errorf("round %d: %d event documents, want %d", round, got, nEvents)
		}
		if got := count("network"); got != nNetwork {
			t.Errorf("round %d: %d network documents, want %d", round, got, nNetwork)
		}
	}

	// task-0300 started 300×7 min = 35 h after base: on its second day.
	st, body := do("GET", "/"+prefix+"-events-"+day(1)+"/_doc/task-0300")
	var doc struct {
		Source map[string]any `json:"_source"`
	}
	if err := json.Unmarshal(body, &doc); st != 200 || err != nil {
		t.Fatalf("get task-0300: %d %s", st, body)
	}
	wantDoc := map[string]any{
		"task_id": "task-0300", "metric_type": "event", "status": "completed", "retry_count": float64(0),
		"duration_seconds": 1.5, "start_time": base.Add(35 * time.Hour).Format(time.RFC3339Nano),
		"@timestamp": base.Add(35*time.Hour + 1500*time.Millisecond).Format(time.RFC3339Nano),
	}
	for k, want := range wantDoc {
		if got := doc.Source[k]; got != want {
			t.Errorf("task-0300 %s = %v, want %v", k, got, want)
		}
	}

	st, body = do("GET", "/"+prefix+"-network-"+day(0)+"/_mapping")
	if st != 200 {
		t.Fatalf("mapping: %d %s", st, body)
	}
	var mappings map[string]struct {
		Mappings struct {
			Properties map[string]struct {
				Type string `json:"type"`
			} `json:"properties"`
		} `json:"mappings"`
	}
	if err := json.Unmarshal(body, &mappings); err != nil || len(mappings) != 1 {
		t.Fatalf("mapping: %v %s", err, body)
	}
	for _, m := range mappings {
		wantTypes := map[string]string{"@timestamp": "date", "start_time": "date", "task_id": "keyword", "host": "keyword",
			"port": "integer", "bytes_received": "long", "latency_seconds": "double", "duration_seconds": "double", "error": "text"}
		for field, want := range wantTypes {
			if got := m.Mappings.Properties[field].Type; got != want {
				t.Errorf("mapping of %s = %q, want %q", field, got, want)
			}
		}
	}

	// A document that does not fit the mapping is rejected for good, with
	// its id and the server's reason.
	bad := network[0]
	bad.OpID = "bad"
	bad.Port = 1 << 40 // beyond integer
	err = e.PublishNetwork(ctx, []schemas.NetworkMetric{bad})
	var rej *RejectedError
	if !errors.As(err, &rej) || len(rej.Items) != 1 || rej.Items[0].ID != "task-0000/bad" || rej.Items[0].Status != 400 ||
		!strings.Contains(rej.Items[0].Reason, "port") {
		t.Errorf("out-of-range port: %v, want RejectedError for task-0000/bad naming port", err)
	}
}
