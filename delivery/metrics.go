package delivery

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type deliveryMetrics struct {
	sent, retried, failed, deadLettered prometheus.Counter
	latency                             prometheus.Histogram

	mu     sync.Mutex
	oldest time.Time
}

func (m *deliveryMetrics) setOldest(t time.Time) {
	m.mu.Lock()
	m.oldest = t
	m.mu.Unlock()
}

func newDeliveryMetrics(reg prometheus.Registerer, publisher string, outbox Outbox, d *Delivery) (*deliveryMetrics, error) {
	labels := prometheus.Labels{"publisher": publisher}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels})
	}
	m := &deliveryMetrics{
		sent:         counter("pipetel_publish_sent_total", "Metrics the publisher delivered."),
		retried:      counter("pipetel_publish_retried_total", "Metrics whose delivery failed and will be retried."),
		failed:       counter("pipetel_publish_failed_total", "Metrics in publish calls that returned an error."),
		deadLettered: counter("pipetel_publish_dead_lettered_total", "Metrics the backend rejected for good, sent to the dead-letter topic."),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pipetel_publish_seconds", Help: "Duration of one publish call.", ConstLabels: labels,
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
	}
	depth := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pipetel_outbox_depth", Help: "Finished metrics waiting for delivery.", ConstLabels: labels,
	}, func() float64 { return float64(outbox.OutboxDepth(publisher)) })
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pipetel_outbox_oldest_age_seconds", Help: "Age of the oldest metric waiting for delivery; 0 when the outbox is empty.", ConstLabels: labels,
	}, func() float64 {
		if outbox.OutboxDepth(publisher) == 0 {
			return 0
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.oldest.IsZero() {
			return 0
		}
		return time.Since(m.oldest).Seconds()
	})
	for _, c := range []prometheus.Collector{m.sent, m.retried, m.failed, m.deadLettered, m.latency, depth, age} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
