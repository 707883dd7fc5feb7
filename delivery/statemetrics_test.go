package delivery

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
)

// TestStateMetrics: the aggregates kept in the state come out as the seed's
// metric families with a partition label, exact, and lint clean.
func TestStateMetrics(t *testing.T) {
	s, err := state.Open(state.Options{NoSync: true, DurationBuckets: []float64{1, 5}, LatencyBuckets: []float64{0.5}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := testclock.Now().Add(-time.Hour).Truncate(time.Second)
	ev := func(task, name string, status schemas.Status, d float64, retries int) schemas.EventMetric {
		return schemas.EventMetric{TaskID: task, EventName: name, StartTime: &start, DurationSeconds: &d, Status: status, RetryCount: retries}
	}
	nw := func(task string, status schemas.Status, l float64) schemas.NetworkMetric {
		return schemas.NetworkMetric{TaskID: task, Operation: "db_query", StartTime: &start, LatencySeconds: &l, Status: status, BytesSent: 10, BytesReceived: 100}
	}
	apply := func(u state.Unit, fn func(b *state.Batch) error) {
		t.Helper()
		if err := s.Own(u); err != nil {
			t.Fatal(err)
		}
		if err := s.Update(context.Background(), u, fn); err != nil {
			t.Fatal(err)
		}
	}
	apply(state.Unit{Stream: state.Events, Partition: 0}, func(b *state.Batch) error {
		for _, m := range []schemas.EventMetric{ev("a", "load", "completed", 0.5, 1), ev("b", "load", "completed", 3, 0), ev("c", "load", "failed", 9, 2)} {
			if err := b.FinishEvent(m); err != nil {
				return err
			}
		}
		return nil
	})
	apply(state.Unit{Stream: state.Events, Partition: 1}, func(b *state.Batch) error {
		return b.FinishEvent(ev("d", "load", "completed", 1, 0))
	})
	apply(state.Unit{Stream: state.Network, Partition: 0}, func(b *state.Batch) error {
		for _, m := range []schemas.NetworkMetric{nw("a", "completed", 0.1), nw("b", "failed", 2)} {
			if err := b.FinishNetwork(m); err != nil {
				return err
			}
		}
		return nil
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewStateMetrics(s))
	want := `
# HELP event_duration_seconds Duration of finished event executions.
# TYPE event_duration_seconds histogram
event_duration_seconds_bucket{event_name="load",partition="0",status="completed",le="1"} 1
event_duration_seconds_bucket{event_name="load",partition="0",status="completed",le="5"} 2
event_duration_seconds_bucket{event_name="load",partition="0",status="completed",le="+Inf"} 2
event_duration_seconds_sum{event_name="load",partition="0",status="completed"} 3.5
event_duration_seconds_count{event_name="load",partition="0",status="completed"} 2
event_duration_seconds_bucket{event_name="load",partition="0",status="failed",le="1"} 0
event_duration_seconds_bucket{event_name="load",partition="0",status="failed",le="5"} 0
event_duration_seconds_bucket{event_name="load",partition="0",status="failed",le="+Inf"} 1
event_duration_seconds_sum{event_name="load",partition="0",status="failed"} 9
event_duration_seconds_count{event_name="load",partition="0",status="failed"} 1
event_duration_seconds_bucket{event_name="load",partition="1",status="completed",le="1"} 1
event_duration_seconds_bucket{event_name="load",partition="1",status="completed",le="5"} 1
event_duration_seconds_bucket{event_name="load",partition="1",status="completed",le="+Inf"} 1
event_duration_seconds_sum{event_name="load",partition="1",status="completed"} 1
event_duration_seconds_count{event_name="load",partition="1",status="completed"} 1
# HELP event_retries_total Retries of finished event executions.
# TYPE event_retries_total counter
event_retries_total{event_name="load",partition="0"} 3
event_retries_total{event_name="load",partition="1"} 0
# HELP events_total Finished event executions.
# TYPE events_total counter
events_total{event_name="load",partition="0",status="completed"} 2
events_total{event_name="load",partition="0",status="failed"} 1
events_total{event_name="load",partition="1",status="completed"} 1
# HELP network_bytes_total Bytes moved by finished network operations.
# TYPE network_bytes_total counter
network_bytes_total{direction="received",operation="db_query",partition="0"} 200
network_bytes_total{direction="sent",operation="db_query",partition="0"} 20
# HELP network_latency_seconds Latency of finished network operations.
# TYPE network_latency_seconds histogram
network_latency_seconds_bucket{operation="db_query",partition="0",le="0.5"} 1
network_latency_seconds_bucket{operation="db_query",partition="0",le="+Inf"} 2
network_latency_seconds_sum{operation="db_query",partition="0"} 2.1
network_latency_seconds_count{operation="db_query",partition="0"} 2
# HELP network_operations_total Finished network operations.
# TYPE network_operations_total counter
network_operations_total{operation="db_query",partition="0",status="completed"} 1
network_operations_total{operation="db_query",partition="0",status="failed"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"event_duration_seconds", "event_retries_total", "events_total", "network_bytes_total", "network_latency_seconds", "network_operations_total"); err != nil {
		t.Fatal(err)
	}
	// A partition this instance no longer owns is not exported.
	s.Disown(state.Unit{Stream: state.Events, Partition: 1})
	if n := testutil.CollectAndCount(NewStateMetrics(s), "events_total"); n != 2 {
		t.Fatalf("%d events_total series after disowning partition 1, want 2", n)
	}

	lintExposition(t, reg)
}

// TestStateMetricsLabelCap: past state.max_label_values names a partition's
// series stop growing: later names are exported as "other", and the folded
// metrics and the names with series of their own are counted per stream
// and partition.
func TestStateMetricsLabelCap(t *testing.T) {
	s, err := state.Open(state.Options{NoSync: true, MaxLabelValues: 2, DurationBuckets: []float64{1}, LatencyBuckets: []float64{1}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := testclock.Now().Add(-time.Hour).Truncate(time.Second)
	apply := func(u state.Unit, fn func(b *state.Batch) error) {
		t.Helper()
		if err := s.Own(u); err != nil {
			t.Fatal(err)
		}
		if err := s.Update(context.Background(), u, fn); err != nil {
			t.Fatal(err)
		}
	}
	apply(state.Unit{Stream: state.Events, Partition: 0}, func(b *state.Batch) error {
		for i, name := range []string{"a", "b", "c", "a", "d", "c"} {
			err := b.FinishEvent(schemas.EventMetric{TaskID: strconv.Itoa(i), EventName: name, StartTime: &start, Status: schemas.StatusCompleted, RetryCount: 1})
			if err != nil {
				return err
			}
		}
		return nil
	})
	apply(state.Unit{Stream: state.Network, Partition: 1}, func(b *state.Batch) error {
		for i, op := range []string{"q", "r", "s"} {
			err := b.FinishNetwork(schemas.NetworkMetric{TaskID: strconv.Itoa(i), Operation: op, StartTime: &start, Status: schemas.StatusFailed, BytesSent: 1})
			if err != nil {
				return err
			}
		}
		return nil
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewStateMetrics(s))
	want := `
# HELP event_retries_total Retries of finished event executions.
# TYPE event_retries_total counter
event_retries_total{event_name="a",partition="0"} 2
event_retries_total{event_name="b",partition="0"} 1
event_retries_total{event_name="other",partition="0"} 3
# HELP events_total Finished event executions.
# TYPE events_total counter
events_total{event_name="a",partition="0",status="completed"} 2
events_total{event_name="b",partition="0",status="completed"} 1
events_total{event_name="other",partition="0",status="completed"} 3
# HELP network_operations_total Finished network operations.
# TYPE network_operations_total counter
network_operations_total{operation="other",partition="1",status="failed"} 1
network_operations_total{operation="q",partition="1",status="failed"} 1
network_operations_total{operation="r",partition="1",status="failed"} 1
# HELP pipetel_folded_label_values_total Finished metrics counted under event_name or operation "other" because their partition had state.max_label_values names already.
# TYPE pipetel_folded_label_values_total counter
pipetel_folded_label_values_total{partition="0",stream="events"} 3
pipetel_folded_label_values_total{partition="1",stream="network"} 1
# HELP pipetel_label_values Distinct event names (stream events) or operations (stream network) with series of their own in the partition; compare with state.max_label_values.
# TYPE pipetel_label_values gauge
pipetel_label_values{partition="0",stream="events"} 2
pipetel_label_values{partition="1",stream="network"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"event_retries_total", "events_total", "network_operations_total", "pipetel_folded_label_values_total", "pipetel_label_values"); err != nil {
		t.Fatal(err)
	}
	// 3 event names × (events_total, duration, retries) + 3 operations × (ops, 2 bytes, latency) + 2 × 2 cap series.
	if n := testutil.CollectAndCount(NewStateMetrics(s)); n != 3*3+3*4+4+1 {
		t.Errorf("%d series, want %d", n, 3*3+3*4+4+1)
	}
	lintExposition(t, reg)
}
