package sinks

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/schemas"
)

// BenchmarkElasticsearchPublish measures building a 500-document bulk request
// and parsing its response, against a local fake node whose own JSON work is
// included: a lower bound.
func BenchmarkElasticsearchPublish(b *testing.B) {
	f := newFakeES(b, func(_ int, r esRequest) (int, string) {
		statuses := make([]int, len(r.lines())/2)
		for i := range statuses {
			statuses[i] = 201
		}
		return 200, bulkItems(r, statuses...)
	})
	f.mu.Lock()
	f.discard = true
	f.mu.Unlock()
	e, err := NewElasticsearch(ElasticsearchConfig{Hosts: []string{f.srv.URL}})
	if err != nil {
		b.Fatal(err)
	}
	start := testclock.Now().Add(-time.Hour).Truncate(time.Second)
	batch := make([]schemas.EventMetric, 500)
	for i := range batch {
		batch[i] = schemas.EventMetric{TaskID: fmt.Sprintf("task-%d", i), EventName: "load", PipelineID: "p",
			StartTime: &start, EndTime: &start, DurationSeconds: fp(1), Status: schemas.StatusCompleted}
	}
	b.ResetTimer()
	for b.Loop() {
		if err := e.PublishEvents(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkRemoteWriteEncode measures one push's encoding: gather, flatten,
// protobuf and snappy, for 100 event names and 20 operations (2,400 series).
func BenchmarkRemoteWriteEncode(b *testing.B) {
	reg := prometheus.NewRegistry()
	p, err := NewPrometheus(reg, PrometheusConfig{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 100 {
		_ = p.PublishEvents(context.Background(), []schemas.EventMetric{{EventName: fmt.Sprint("event-", i), Status: schemas.StatusCompleted, DurationSeconds: fp(0.3)}})
	}
	for i := range 20 {
		_ = p.PublishNetwork(context.Background(), []schemas.NetworkMetric{{Operation: fmt.Sprint("op-", i), Status: schemas.StatusCompleted, LatencySeconds: fp(0.01)}})
	}
	var buf []byte
	series := 0
	for b.Loop() {
		mfs, err := reg.Gather()
		if err != nil {
			b.Fatal(err)
		}
		s := familiesToSeries(mfs, []rwLabel{{"instance", "bench"}}, 1)
		series = len(s)
		buf = appendWriteRequest(buf[:0], s)
		_ = snappy.Encode(nil, buf)
	}
	if series != 2400 {
		b.Fatalf("%d series, want 2400", series)
	}
	b.ReportMetric(float64(b.N*series)/b.Elapsed().Seconds(), "series/s")
}
