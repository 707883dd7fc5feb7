package sinks

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pipetel/pipetel/schemas"
)

func TestGrafanaCloudWithGatherer(t *testing.T) {
	src := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "events_total", Help: "h"}, []string{"event_name", "partition", "instance"})
	src.MustRegister(c)
	c.WithLabelValues("load", "3", "").Add(7)
	// A label of the series itself wins over the instance label.
	c.WithLabelValues("save", "0", "own").Add(2)

	r := newReceiver(t)
	own := prometheus.NewRegistry()
	// newTestGrafana publishes metrics first: with a gatherer they are ignored.
	g := newTestGrafana(t, r, GrafanaCloudConfig{}, WithGatherer(src), WithRegisterer(own))
	if err := g.PublishEvents(context.Background(), []schemas.EventMetric{{EventName: "x", Status: schemas.StatusCompleted}}); err != nil {
		t.Fatalf("PublishEvents: %v", err)
	}
	if err := g.Push(context.Background()); err != nil {
		t.Fatalf("Push: %v", err)
	}
	reqs := r.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	var got []string
	for _, s := range reqs[0] {
		got = append(got, render(s))
	}
	ts := testNow.UnixMilli()
	want := []string{
		`{__name__="events_total",event_name="load",instance="it-1",partition="3"} 7 @` + strconv.FormatInt(ts, 10),
		`{__name__="events_total",event_name="save",instance="own",partition="0"} 2 @` + strconv.FormatInt(ts, 10),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("pushed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err := testutil.GatherAndCompare(own, strings.NewReader(strings.ReplaceAll(`
# HELP pipetel_push_failed_total Pushes that failed after their retries (the next push carries their values).
# TYPE pipetel_push_failed_total counter
pipetel_push_failed_total{publisher="grafanacloud"} 0
# HELP pipetel_push_last_success_timestamp_seconds Unix time of the last successful push; 0 before the first.
# TYPE pipetel_push_last_success_timestamp_seconds gauge
pipetel_push_last_success_timestamp_seconds{publisher="grafanacloud"} LAST_SUCCESS
# HELP pipetel_push_sent_total Pushes whose every request the receiver accepted.
# TYPE pipetel_push_sent_total counter
pipetel_push_sent_total{publisher="grafanacloud"} 1
# HELP pipetel_push_series Series in the last push.
# TYPE pipetel_push_series gauge
pipetel_push_series{publisher="grafanacloud"} 2
`, "LAST_SUCCESS", strconv.FormatFloat(float64(testNow.Unix()), 'g', -1, 64)))); err != nil {
		t.Error(err)
	}
}

func TestGrafanaCloudPushMetricsCountFailures(t *testing.T) {
	r := newReceiver(t, 401, 401)
	own := prometheus.NewRegistry()
	g := newTestGrafana(t, r, GrafanaCloudConfig{}, WithRegisterer(own))
	for range 2 {
		if err := g.Push(context.Background()); err == nil {
			t.Fatal("Push with refused credentials succeeded")
		}
	}
	if err := g.Push(context.Background()); err != nil {
		t.Fatalf("Push: %v", err)
	}
	for name, want := range map[string]float64{"pipetel_push_failed_total": 2, "pipetel_push_sent_total": 1} {
		mfs, err := own.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var got float64 = -1
		for _, mf := range mfs {
			if mf.GetName() == name {
				got = mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	// A second publisher on the same registry cannot register the same series.
	if _, err := NewGrafanaCloud(g.Config(), WithRegisterer(own)); err == nil || !strings.Contains(err.Error(), "cannot register grafanacloud metrics") {
		t.Errorf("second registration: %v, want an error", err)
	}
}

// TestGrafanaCloudLabelCap: the in-memory series take at most
// WithMaxLabelValues event names and operations; a push carries later ones
// as "other", and the folded metrics are counted on the registerer.
func TestGrafanaCloudLabelCap(t *testing.T) {
	r := newReceiver(t)
	own := prometheus.NewRegistry()
	// newTestGrafana publishes load (completed, timed_out) and query first.
	g := newTestGrafana(t, r, GrafanaCloudConfig{}, WithMaxLabelValues(1), WithRegisterer(own))
	ctx := context.Background()
	_ = g.PublishEvents(ctx, []schemas.EventMetric{
		{TaskID: "3", EventName: "x", Status: schemas.StatusCompleted, DurationSeconds: fp(2)},
		{TaskID: "4", EventName: "load", Status: schemas.StatusCompleted, DurationSeconds: fp(0.5)},
		{TaskID: "5", EventName: "y", Status: schemas.StatusFailed, RetryCount: 4},
	})
	_ = g.PublishNetwork(ctx, []schemas.NetworkMetric{{TaskID: "3", OpID: "a", Operation: "scan", Status: schemas.StatusCompleted, LatencySeconds: fp(0.2)}})
	if err := g.Push(ctx); err != nil {
		t.Fatalf("Push: %v", err)
	}
	reqs := r.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	var counters []string
	values := map[string]bool{}
	for _, s := range reqs[0] {
		for _, l := range s.Labels {
			if l.Name == "event_name" || l.Name == "operation" {
				values[l.Name+"="+l.Value] = true
			}
			if l.Name == "__name__" && (l.Value == "events_total" || l.Value == "event_retries_total" || l.Value == "network_operations_total") {
				counters = append(counters, strings.TrimSuffix(render(s), " @"+strconv.FormatInt(testNow.UnixMilli(), 10)))
			}
		}
	}
	want := []string{
		`{__name__="event_retries_total",event_name="load",instance="it-1"} 3`,
		`{__name__="event_retries_total",event_name="other",instance="it-1"} 4`,
		`{__name__="events_total",event_name="load",instance="it-1",status="completed"} 2`,
		`{__name__="events_total",event_name="load",instance="it-1",status="timed_out"} 1`,
		`{__name__="events_total",event_name="other",instance="it-1",status="completed"} 1`,
		`{__name__="events_total",event_name="other",instance="it-1",status="failed"} 1`,
		`{__name__="network_operations_total",instance="it-1",operation="other",status="completed"} 1`,
		`{__name__="network_operations_total",instance="it-1",operation="query",status="completed"} 1`,
	}
	if strings.Join(counters, "\n") != strings.Join(want, "\n") {
		t.Errorf("pushed counters:\n%s\nwant:\n%s", strings.Join(counters, "\n"), strings.Join(want, "\n"))
	}
	if len(values) != 4 || !values["event_name=load"] || !values["event_name=other"] || !values["operation=query"] || !values["operation=other"] {
		t.Errorf("pushed label values %v, want load, other, query, other", values)
	}
	if got := testutil.ToFloat64(g.agg.folded); got != 3 {
		t.Errorf("folded %v, want 3", got)
	}
	mfs, err := own.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "pipetel_publish_folded_label_values_total" {
			found = len(mf.GetMetric()) == 1 && mf.GetMetric()[0].GetCounter().GetValue() == 3 &&
				mf.GetMetric()[0].GetLabel()[0].GetValue() == "grafanacloud"
		}
	}
	if !found {
		t.Error(`pipetel_publish_folded_label_values_total{publisher="grafanacloud"} 3 is not on the registerer`)
	}
}
