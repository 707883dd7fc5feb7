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
