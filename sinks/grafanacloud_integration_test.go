package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pipetel/pipetel/schemas"
)

// TestGrafanaCloudIntegration pushes to the Prometheus named by
// PIPETEL_TEST_PROMETHEUS (deploy/local/services starts one at
// http://127.0.0.1:19090 with the remote-write receiver and basic auth from
// PIPETEL_TEST_PROMETHEUS_USER / _PASSWORD) and reads the values back with
// PromQL.
func TestGrafanaCloudIntegration(t *testing.T) {
	base := strings.TrimRight(os.Getenv("PIPETEL_TEST_PROMETHEUS"), "/")
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("PIPETEL_TEST_PROMETHEUS not set: no Prometheus to test against (CI=true: required)")
		}
		t.Skip("PIPETEL_TEST_PROMETHEUS not set: no Prometheus to test against (make services starts one)")
	}
	user, password := os.Getenv("PIPETEL_TEST_PROMETHEUS_USER"), os.Getenv("PIPETEL_TEST_PROMETHEUS_PASSWORD")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	instance := fmt.Sprintf("pipetel-it-%d", time.Now().UnixNano())
	cfg := GrafanaCloudConfig{
		Endpoint: base + "/api/v1/write", InstanceID: user, APIKey: password, InstanceLabel: instance,
		MaxSeriesPerRequest: 7, // several requests per push
	}
	g, err := NewGrafanaCloud(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var events []schemas.EventMetric
	wantRetries, wantTimed := 0, 0
	for i := range 40 {
		m := schemas.EventMetric{TaskID: fmt.Sprint(i), EventName: []string{"load", "save"}[i%2], Status: schemas.StatusCompleted, RetryCount: i % 4}
		if i%5 == 0 {
			m.Status = schemas.StatusTimedOut
		} else {
			m.DurationSeconds = fp(float64(i) / 10)
			wantTimed++
		}
		wantRetries += m.RetryCount
		events = append(events, m)
	}
	_ = g.PublishEvents(ctx, events)
	_ = g.PublishNetwork(ctx, []schemas.NetworkMetric{
		{Operation: "query", Status: schemas.StatusCompleted, LatencySeconds: fp(0.01), BytesSent: 100, BytesReceived: 5000},
		{Operation: "query", Status: schemas.StatusFailed, LatencySeconds: fp(2), BytesSent: 50},
	})
	if err := g.Push(ctx); err != nil {
		t.Fatalf("Push: %v", err)
	}
	// A second push one interval later: same values, later timestamp.
	if err := g.Push(ctx); err != nil {
		t.Fatalf("second Push: %v", err)
	}

	query := func(q string) (float64, bool) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/query?query="+url.QueryEscape(q), nil)
		if user != "" {
			req.SetBasicAuth(user, password)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("query %s: %v", q, err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		var r struct {
			Status string
			Data   struct {
				Result []struct {
					Value [2]any
				}
			}
		}
		if err := json.Unmarshal(body, &r); err != nil || r.Status != "success" {
			t.Fatalf("query %s: %d %s", q, res.StatusCode, body)
		}
		if len(r.Data.Result) != 1 {
			return 0, false
		}
		var v float64
		s, _ := r.Data.Result[0].Value[1].(string)
		if _, err := fmt.Sscan(s, &v); err != nil {
			t.Fatalf("query %s: value %v", q, r.Data.Result[0].Value)
		}
		return v, true
	}
	expect := func(q string, want float64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			got, ok := query(q)
			if ok && got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%s = %v (found %v), want %v", q, got, ok, want)
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	sel := fmt.Sprintf(`{instance=%q}`, instance)
	expect("sum(event_retries_total"+sel+")", float64(wantRetries))
	expect("sum(events_total"+sel+")", float64(len(events)))
	expect("sum(event_duration_seconds_count"+sel+")", float64(wantTimed))
	expect(fmt.Sprintf(`sum(event_duration_seconds_bucket{instance=%q,le="+Inf"})`, instance), float64(wantTimed))
	expect(fmt.Sprintf(`sum(network_bytes_total{instance=%q,direction="received"})`, instance), 5000)
	expect("sum(network_latency_seconds_count"+sel+")", 2)

	if user == "" {
		t.Log("PIPETEL_TEST_PROMETHEUS_USER not set: wrong-password check skipped")
		return
	}
	cfg.APIKey = password + "-wrong"
	bad, err := NewGrafanaCloud(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_ = bad.PublishEvents(ctx, events[:1])
	err = bad.Push(ctx)
	if !errors.Is(err, ErrAuth) || !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "401") {
		t.Errorf("push with a wrong password: %v, want a permanent authentication error naming 401", err)
	}
	if err != nil && strings.Contains(err.Error(), cfg.APIKey) {
		t.Errorf("error %q shows the password", err)
	}
}
