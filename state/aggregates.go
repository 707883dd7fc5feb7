package state

import (
	"math"
	"slices"

	"github.com/dgraph-io/badger/v4"

	"github.com/pipetel/pipetel/schemas"
)

// tagAggregates holds a unit's exported counters and histograms: + p.
var tagAggregates, tagNetAggregates = [2]byte{'a', 'g'}, [2]byte{'a', 'n'}

// Default histogram bounds, in seconds, when Options leave them empty.
var (
	DefaultDurationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	DefaultLatencyBuckets  = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
)

// Aggregates are one unit's counters and histograms over the metrics it
// finished. They are part of the unit's state: written in the transaction
// that finishes a metric, logged to the changelog, restored with the unit.
// So a restart or a move of the partition neither resets them nor counts a
// record twice, and the instance that owns the partition exports them.
type Aggregates struct {
	DurationBounds []float64        `json:"db,omitempty"`
	LatencyBounds  []float64        `json:"lb,omitempty"`
	Events         []*EventSeries   `json:"e,omitempty"`
	Network        []*NetworkSeries `json:"n,omitempty"`
}

// Histogram is a classic histogram: Counts[i] observations at most
// bounds[i], the last one above every bound (+Inf).
type Histogram struct {
	Counts []uint64 `json:"c"`
	Sum    float64  `json:"s"`
}

// Count is the number of observations.
func (h Histogram) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

func (h *Histogram) observe(bounds []float64, v float64) {
	if len(h.Counts) != len(bounds)+1 {
		h.Counts = make([]uint64, len(bounds)+1)
	}
	i, _ := slices.BinarySearch(bounds, v) // first bound >= v
	h.Counts[i]++
	h.Sum += v
}

// EventSeries aggregates the finished events of one event name and status.
type EventSeries struct {
	EventName string    `json:"n"`
	Status    string    `json:"s"`
	Count     uint64    `json:"c"`
	Retries   uint64    `json:"r"`
	Duration  Histogram `json:"d"`
}

// NetworkSeries aggregates the finished operations of one operation and
// status.
type NetworkSeries struct {
	Operation     string    `json:"o"`
	Status        string    `json:"s"`
	Count         uint64    `json:"c"`
	BytesSent     uint64    `json:"bs"`
	BytesReceived uint64    `json:"br"`
	Latency       Histogram `json:"l"`
}

// observable returns a duration in seconds that a histogram can take:
// unknown (nil, NaN, infinite) durations are not observed, and a negative one
// (clock skew between hosts) counts as 0.
func observable(d *float64) (float64, bool) {
	if d == nil || math.IsNaN(*d) || math.IsInf(*d, 0) {
		return 0, false
	}
	return max(*d, 0), true
}

func (b *Batch) loadAggregates() error {
	if b.aggs != nil {
		return nil
	}
	a := &Aggregates{}
	if _, err := b.get(prefix(aggregatesTag(b.unit.Stream), b.unit.Partition), a); err != nil {
		return err
	}
	// Bounds changed by the operator: the old counts do not fit the new
	// buckets, so histograms start again (a counter reset to Prometheus).
	if !slices.Equal(a.DurationBounds, b.s.durationBounds) {
		for _, s := range a.Events {
			s.Duration = Histogram{}
		}
		a.DurationBounds = b.s.durationBounds
	}
	if !slices.Equal(a.LatencyBounds, b.s.latencyBounds) {
		for _, s := range a.Network {
			s.Latency = Histogram{}
		}
		a.LatencyBounds = b.s.latencyBounds
	}
	b.aggs = a
	return nil
}

func (b *Batch) aggregateEvent(m schemas.EventMetric) error {
	if err := b.loadAggregates(); err != nil {
		return err
	}
	var s *EventSeries
	for _, e := range b.aggs.Events {
		if e.EventName == m.EventName && e.Status == string(m.Status) {
			s = e
		}
	}
	if s == nil {
		s = &EventSeries{EventName: m.EventName, Status: string(m.Status)}
		b.aggs.Events = append(b.aggs.Events, s)
	}
	s.Count++
	s.Retries += uint64(max(m.RetryCount, 0))
	if d, ok := observable(m.DurationSeconds); ok {
		s.Duration.observe(b.aggs.DurationBounds, d)
	}
	b.aggsDirty = true
	return nil
}

func (b *Batch) aggregateNetwork(m schemas.NetworkMetric) error {
	if err := b.loadAggregates(); err != nil {
		return err
	}
	var s *NetworkSeries
	for _, n := range b.aggs.Network {
		if n.Operation == m.Operation && n.Status == string(m.Status) {
			s = n
		}
	}
	if s == nil {
		s = &NetworkSeries{Operation: m.Operation, Status: string(m.Status)}
		b.aggs.Network = append(b.aggs.Network, s)
	}
	s.Count++
	s.BytesSent += uint64(max(m.BytesSent, 0))
	s.BytesReceived += uint64(max(m.BytesReceived, 0))
	if l, ok := observable(m.LatencySeconds); ok {
		s.Latency.observe(b.aggs.LatencyBounds, l)
	}
	b.aggsDirty = true
	return nil
}

// UnitAggregates is the aggregates of one owned unit.
type UnitAggregates struct {
	Unit Unit
	Aggregates
}

// Aggregates returns the aggregates of every owned unit, in stream and
// partition order. Units that finished nothing yet are left out.
func (s *Store) Aggregates() ([]UnitAggregates, error) {
	var out []UnitAggregates
	err := s.db.View(func(txn *badger.Txn) error {
		for _, st := range []Stream{Events, Network} {
			for _, p := range s.Owned(st) {
				b := &Batch{s: s, txn: txn, unit: Unit{st, p}}
				var a Aggregates
				found, err := b.get(prefix(aggregatesTag(st), p), &a)
				if err != nil {
					return err
				}
				if found {
					if st == Events {
						a.Network = nil
					} else {
						a.Events = nil
					}
					out = append(out, UnitAggregates{Unit: Unit{st, p}, Aggregates: a})
				}
			}
		}
		return nil
	})
	return out, err
}
