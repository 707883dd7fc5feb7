package processor

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
)

// metrics is the processor's own health, exported as pipetel_* series.
type metrics struct {
	consumed    *prometheus.CounterVec
	invalid     *prometheus.CounterVec
	duplicates  *prometheus.CounterVec
	late        *prometheus.CounterVec
	finished    *prometheus.CounterVec
	lag         *prometheus.GaugeVec
	commitLag   *prometheus.GaugeVec
	assigned    *prometheus.GaugeVec
	applySecs   prometheus.Histogram
	paused      prometheus.Gauge
	deadLetters prometheus.Counter

	expired       *prometheus.CounterVec
	pastRetention *prometheus.CounterVec
	skipped       *prometheus.CounterVec
	foreign       *prometheus.CounterVec
	partitionOpen *prometheus.GaugeVec

	restoring      prometheus.Gauge
	restoreRecords *prometheus.CounterVec
	restoreSeconds prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, store *state.Store, cfg Config) (*metrics, error) {
	m := &metrics{
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipetel_records_consumed_total", Help: "Input records read from Kafka, valid or not.",
		}, []string{"topic"}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipetel_invalid_records_total", Help: "Input records rejected by the decoder, by error code; each went to the dead-letter topic.",
		}, []string{"topic", "code"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipetel_duplicate_records_total", Help: "Valid records that changed nothing because the same record was already applied.",
		}, []string{"topic"}),
		late: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipetel_late_records_total", Help: "Retry records that arrived after their task finished; not applied to the published metric.",
		}, []string{"topic"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipetel_finished_total", Help: "Event executions and network operations finished by this process.",
		}, []string{"stream"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pipetel_consumer_lag_records", Help: "Records between the partition's high watermark and the next record to apply.",
		}, []string{"topic", "partition"}),
		commitLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pipetel_commit_lag_records", Help: "Records applied to the state but not yet committed to the consumer group.",
		}, []string{"topic", "partition"}),
		assigned: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pipetel_assigned_partitions", Help: "Partitions this instance owns.",
		}, []string{"topic"}),
		applySecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pipetel_batch_apply_seconds", Help: "Time to apply and commit one batch to the state store.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		paused: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pipetel_fetch_paused", Help: "1 while fetching is paused because an outbox is full.",
		}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pipetel_dead_letters_total", Help: "Records written to the dead-letter topic.",
		}),
	}
	m.expired = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pipetel_expired_total", Help: "Open entries finished by expiry: timed_out (no end) or orphan (no start), including early expiry at max_open_tasks.",
	}, []string{"stream", "status"})
	m.skipped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pipetel_skipped_offsets_total",
		Help: "Offsets the reader jumped over: records the topic's retention deleted before they were read (or compaction removed, or transaction markers).",
	}, []string{"topic"})
	m.foreign = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pipetel_changelog_foreign_records_total",
		Help: "Changelog records a stale owner appended after this instance's fence; skipped by restores and superseded by this instance's values.",
	}, []string{"topic"})
	m.pastRetention = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pipetel_finished_past_retention_total",
		Help: "Metrics that finished already older than state.retention behind the partition's newest record time: counted and published, not kept queryable.",
	}, []string{"stream"})
	m.partitionOpen = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "pipetel_partition_open_tasks", Help: "Open entries per owned partition; compare with processor.max_open_tasks.",
	}, []string{"topic", "partition"})
	m.restoring = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "pipetel_restoring_partitions", Help: "Partitions whose state is being rebuilt from the changelog.",
	})
	m.restoreRecords = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pipetel_restored_records_total", Help: "Changelog records applied while restoring partition state.",
	}, []string{"topic"})
	m.restoreSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "pipetel_restore_seconds", Help: "Time to rebuild one partition's state from the changelog.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
	})
	open := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pipetel_open_tasks", Help: "Event executions with a start or an end but not both, in owned partitions.",
	}, func() float64 { return float64(store.OpenTasks(state.Events)) })
	openNet := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pipetel_open_network_operations", Help: "Network operations with a start or an end but not both, in owned partitions.",
	}, func() float64 { return float64(store.OpenTasks(state.Network)) })
	for _, c := range []prometheus.Collector{m.consumed, m.invalid, m.duplicates, m.late, m.finished, m.lag, m.commitLag, m.assigned, m.applySecs, m.paused, m.deadLetters, m.expired, m.pastRetention, m.skipped, m.foreign, m.partitionOpen, m.restoring, m.restoreRecords, m.restoreSeconds, open, openNet, newOldestOpen(store, cfg)} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Pre-create the series users alert on, so they read 0 rather than
	// being absent before the first occurrence.
	for _, t := range []string{cfg.EventsTopic, cfg.NetworkTopic} {
		m.consumed.WithLabelValues(t)
		m.duplicates.WithLabelValues(t)
		m.late.WithLabelValues(t)
		m.skipped.WithLabelValues(t)
		m.foreign.WithLabelValues(t)
		m.invalid.WithLabelValues(t, CodeApplyFailed)
		for _, code := range schemas.Codes {
			m.invalid.WithLabelValues(t, string(code))
		}
	}
	for _, s := range []string{"events", "network"} {
		m.finished.WithLabelValues(s)
		m.pastRetention.WithLabelValues(s)
	}
	return m, nil
}
