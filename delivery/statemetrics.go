package delivery

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipetel/pipetel/state"
)

// AggregateSource is where StateMetrics reads the aggregates of the owned
// partitions; *state.Store is one.
type AggregateSource interface {
	Aggregates() ([]state.UnitAggregates, error)
}

var _ AggregateSource = (*state.Store)(nil)

// StateMetrics exports the counters and histograms kept in the state store,
// with the seed's metric names plus a partition label, from the instance
// that owns each partition. Because they are partition state — updated in
// the transaction that applies the input records, restored with the
// partition — a restart or a move of the partition neither resets nor
// double-counts them. Sum over the partition label for totals.
//
//	events_total{event_name,status,partition}              counter
//	event_duration_seconds{event_name,status,partition}    histogram
//	event_retries_total{event_name,partition}              counter
//	network_operations_total{operation,status,partition}   counter
//	network_bytes_total{operation,direction,partition}     counter
//	network_latency_seconds{operation,partition}           histogram
//	pipetel_label_values{stream,partition}                 gauge, names with series of their own
//	pipetel_folded_label_values_total{stream,partition}    counter, metrics counted under "other"
//
// Each partition gives series of their own to at most state.max_label_values
// event names (and operations); the metrics of later names are counted under
// event_name="other" (operation="other") and in
// pipetel_folded_label_values_total.
type StateMetrics struct {
	src AggregateSource

	eventsTotal, eventDuration, eventRetries *prometheus.Desc
	netOps, netBytes, netLatency             *prometheus.Desc
	labelValues, folded                      *prometheus.Desc
	scrapeErrors                             prometheus.Counter
}

var _ prometheus.Collector = (*StateMetrics)(nil)

// NewStateMetrics returns the collector; register it on the registry that
// /metrics serves (or that the Grafana Cloud publisher pushes).
func NewStateMetrics(src AggregateSource) *StateMetrics {
	return &StateMetrics{
		src:           src,
		eventsTotal:   prometheus.NewDesc("events_total", "Finished event executions.", []string{"event_name", "status", "partition"}, nil),
		eventDuration: prometheus.NewDesc("event_duration_seconds", "Duration of finished event executions.", []string{"event_name", "status", "partition"}, nil),
		eventRetries:  prometheus.NewDesc("event_retries_total", "Retries of finished event executions.", []string{"event_name", "partition"}, nil),
		netOps:        prometheus.NewDesc("network_operations_total", "Finished network operations.", []string{"operation", "status", "partition"}, nil),
		netBytes:      prometheus.NewDesc("network_bytes_total", "Bytes moved by finished network operations.", []string{"operation", "direction", "partition"}, nil),
		netLatency:    prometheus.NewDesc("network_latency_seconds", "Latency of finished network operations.", []string{"operation", "partition"}, nil),
		labelValues: prometheus.NewDesc("pipetel_label_values",
			"Distinct event names (stream events) or operations (stream network) with series of their own in the partition; compare with state.max_label_values.",
			[]string{"stream", "partition"}, nil),
		folded: prometheus.NewDesc("pipetel_folded_label_values_total",
			`Finished metrics counted under event_name or operation "other" because their partition had state.max_label_values names already.`,
			[]string{"stream", "partition"}, nil),
		scrapeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pipetel_state_metrics_errors_total", Help: "Scrapes that could not read the aggregates from the state store.",
		}),
	}
}

// Describe sends the descriptors.
func (m *StateMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.eventsTotal, m.eventDuration, m.eventRetries, m.netOps, m.netBytes, m.netLatency, m.labelValues, m.folded} {
		ch <- d
	}
	m.scrapeErrors.Describe(ch)
}

// Collect reads the owned partitions' aggregates once per scrape.
func (m *StateMetrics) Collect(ch chan<- prometheus.Metric) {
	defer m.scrapeErrors.Collect(ch)
	units, err := m.src.Aggregates()
	if err != nil {
		m.scrapeErrors.Inc()
		ch <- prometheus.NewInvalidMetric(m.eventsTotal, err)
		return
	}
	for _, u := range units {
		p := strconv.Itoa(int(u.Unit.Partition))
		ch <- prometheus.MustNewConstMetric(m.labelValues, prometheus.GaugeValue, float64(u.LabelValues), u.Unit.Stream.String(), p)
		ch <- prometheus.MustNewConstMetric(m.folded, prometheus.CounterValue, float64(u.Folded), u.Unit.Stream.String(), p)
		retries := map[string]uint64{}
		for _, s := range u.Events {
			ch <- prometheus.MustNewConstMetric(m.eventsTotal, prometheus.CounterValue, float64(s.Count), s.EventName, s.Status, p)
			ch <- constHistogram(m.eventDuration, u.DurationBounds, s.Duration, s.EventName, s.Status, p)
			retries[s.EventName] += s.Retries
		}
		for name, n := range retries {
			ch <- prometheus.MustNewConstMetric(m.eventRetries, prometheus.CounterValue, float64(n), name, p)
		}
		type bytes struct{ sent, received uint64 }
		perOp := map[string]*bytes{}
		latency := map[string]*state.Histogram{}
		for _, s := range u.Network {
			ch <- prometheus.MustNewConstMetric(m.netOps, prometheus.CounterValue, float64(s.Count), s.Operation, s.Status, p)
			b := perOp[s.Operation]
			if b == nil {
				b = &bytes{}
				perOp[s.Operation] = b
			}
			b.sent += s.BytesSent
			b.received += s.BytesReceived
			h := latency[s.Operation]
			if h == nil {
				h = &state.Histogram{Counts: make([]uint64, len(u.LatencyBounds)+1)}
				latency[s.Operation] = h
			}
			for i, c := range s.Latency.Counts {
				if i < len(h.Counts) {
					h.Counts[i] += c
				}
			}
			h.Sum += s.Latency.Sum
		}
		for op, b := range perOp {
			ch <- prometheus.MustNewConstMetric(m.netBytes, prometheus.CounterValue, float64(b.sent), op, "sent", p)
			ch <- prometheus.MustNewConstMetric(m.netBytes, prometheus.CounterValue, float64(b.received), op, "received", p)
		}
		for op, h := range latency {
			ch <- constHistogram(m.netLatency, u.LatencyBounds, *h, op, p)
		}
	}
}

func constHistogram(d *prometheus.Desc, bounds []float64, h state.Histogram, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(bounds))
	var cum uint64
	for i, b := range bounds {
		if i < len(h.Counts) {
			cum += h.Counts[i]
		}
		buckets[b] = cum
	}
	return prometheus.MustNewConstHistogram(d, h.Count(), h.Sum, buckets, labels...)
}
