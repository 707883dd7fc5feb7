package processor

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipetel/pipetel/state"
)

// oldestOpenMaxKeys bounds the deadline-index entries one partition's
// gauge reads per scrape. With one timeout per stream the walk reads one or
// two; only widely different per-event-name timeouts make it read more.
const oldestOpenMaxKeys = 10_000

// oldestOpen exports pipetel_oldest_open_seconds{stream,partition}: how
// long ago, by the processor's wall clock (Config.Now), the oldest open
// entry with a start started, per owned partition; 0 when none is open. It
// is computed at scrape time from the store's committed state (a bounded
// seek of the deadline index, not a scan), for the units the store owns
// then, so a revoked partition's series is gone from the next scrape.
// Alerting on it catches a task that hangs long before its timeout
// finishes it as timed_out.
type oldestOpen struct {
	desc    *prometheus.Desc
	store   *state.Store
	now     func() time.Time
	longest map[state.Stream]time.Duration
}

func newOldestOpen(store *state.Store, cfg Config) *oldestOpen {
	r := newRules(cfg)
	longest := r.taskTimeout
	for _, d := range r.timeouts {
		longest = max(longest, d)
	}
	return &oldestOpen{
		desc: prometheus.NewDesc("pipetel_oldest_open_seconds",
			"Age, by the instance's wall clock, of the oldest started and unfinished event (stream events) or network operation (stream network) of the owned partition; 0 when none is open.",
			[]string{"stream", "partition"}, nil),
		store: store, now: cfg.wallClock(),
		longest: map[state.Stream]time.Duration{state.Events: longest, state.Network: r.opTimeout},
	}
}

func (o *oldestOpen) Describe(ch chan<- *prometheus.Desc) { ch <- o.desc }

func (o *oldestOpen) Collect(ch chan<- prometheus.Metric) {
	now := o.now()
	for _, st := range []state.Stream{state.Events, state.Network} {
		for _, p := range o.store.Owned(st) {
			u := state.Unit{Stream: st, Partition: p}
			age := 0.0
			if o.store.OpenTasksOf(u) > 0 {
				start, found, err := o.store.OldestOpenStart(u, o.longest[st], oldestOpenMaxKeys)
				if err != nil {
					// A read that failed (the store is closing) leaves the
					// series out of this scrape rather than failing it.
					continue
				}
				if found {
					age = max(0, now.Sub(start).Seconds())
				}
			}
			ch <- prometheus.MustNewConstMetric(o.desc, prometheus.GaugeValue, age, st.String(), strconv.Itoa(int(p)))
		}
	}
}
