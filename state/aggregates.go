package state

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/dgraph-io/badger/v4"

	"github.com/pipetel/pipetel/schemas"
)

// tagAggregates holds a unit's exported counters and histograms: + p, then
// one of the aggregate kinds below. The bare tag + p is the single JSON value
// of earlier versions, read and split into the keys below by the first batch
// that aggregates (migrateAggregates).
var tagAggregates, tagNetAggregates = [2]byte{'a', 'g'}, [2]byte{'a', 'n'}

// Aggregate kinds, the byte after tag + p.
const (
	aggMetaKind   = 'm' // → aggMeta: bounds, distinct names, folded count
	aggSeriesKind = 's' // + netID(name, status) → one series
)

// Default histogram bounds, in seconds, when Options leave them empty.
var (
	DefaultDurationBuckets = schemas.DefaultDurationBuckets
	DefaultLatencyBuckets  = schemas.DefaultLatencyBuckets
)

// Aggregates are one unit's counters and histograms over the metrics it
// finished. They are part of the unit's state: written in the transaction
// that finishes a metric, logged to the changelog, restored with the unit.
// So a restart or a move of the partition neither resets them nor counts a
// record twice, and the instance that owns the partition exports them.
//
// Stored as one key per series plus one per unit (see aggMeta), so that a
// batch reads and writes only the series it touches. The JSON tags are the
// single value of earlier versions, which still reads.
type Aggregates struct {
	DurationBounds []float64        `json:"db,omitempty"`
	LatencyBounds  []float64        `json:"lb,omitempty"`
	Events         []*EventSeries   `json:"e,omitempty"`
	Network        []*NetworkSeries `json:"n,omitempty"`
	// LabelValues is how many distinct event names (network: operations)
	// have series of their own; Folded is how many finished metrics were
	// counted under OtherLabelValue instead, because the unit already had
	// MaxLabelValues names.
	LabelValues uint64 `json:"lv,omitempty"`
	Folded      uint64 `json:"fo,omitempty"`
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

// aggMeta is a unit's per-unit aggregate value. Names and Folded are the
// label cap's (labelcap.go). Gen counts the changes of
// Bounds: a series stored under another generation was observed with other
// bucket bounds, so its histogram counts as empty (a counter reset to
// Prometheus) while its counters go on. Keeping the generation in each
// series, instead of rewriting every series when the bounds change, keeps a
// bounds change to the keys a batch touches anyway.
type aggMeta struct {
	Gen    uint64    `json:"g"`
	Bounds []float64 `json:"b"`
	Names  uint64    `json:"n"` // distinct names with series of their own
	Folded uint64    `json:"f"` // metrics counted under OtherLabelValue
}

// storedEventSeries and storedNetworkSeries are a series as stored: with
// the bounds generation its histogram was observed under.
type storedEventSeries struct {
	EventSeries
	Gen uint64 `json:"g"`
}

type storedNetworkSeries struct {
	NetworkSeries
	Gen uint64 `json:"g"`
}

// aggBatch is what one batch read of its unit's aggregates and will write
// back: only the series it touched.
type aggBatch struct {
	meta      aggMeta
	metaDirty bool
	names     map[string]bool // name → has series of its own, as read or added in this batch
	newNames  []string        // names given series in this batch, in order
	events    map[string]*storedEventSeries
	network   map[string]*storedNetworkSeries
	order     []string // keys of the touched series, in first-touch order
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

func aggMetaKey(tag [2]byte, p int32) []byte { return key(tag, p, []byte{aggMetaKind}) }

func aggSeriesKey(tag [2]byte, p int32, name, status string) []byte {
	return key(tag, p, []byte{aggSeriesKind}, netID(name, status))
}

// bounds are the histogram bounds of stream st's series.
func (s *Store) bounds(st Stream) []float64 {
	if st == Network {
		return s.latencyBounds
	}
	return s.durationBounds
}

// loadAggregates reads the unit's aggregate metadata, once per batch. The
// series are read one by one as the batch touches them.
func (b *Batch) loadAggregates() error {
	if b.agg != nil {
		return nil
	}
	tag, p := aggregatesTag(b.unit.Stream), b.unit.Partition
	bounds := b.s.bounds(b.unit.Stream)
	a := &aggBatch{names: map[string]bool{}, events: map[string]*storedEventSeries{}, network: map[string]*storedNetworkSeries{}}
	found, err := b.get(aggMetaKey(tag, p), &a.meta)
	if err != nil {
		return err
	}
	b.agg = a // migrateAggregates fills it
	if !found {
		a.meta, a.metaDirty = aggMeta{Bounds: bounds}, true
		if err := b.migrateAggregates(); err != nil {
			b.agg = nil
			return err
		}
	}
	// Bounds changed by the operator: the old counts do not fit the new
	// buckets, so histograms start again (a counter reset to Prometheus).
	if !slices.Equal(a.meta.Bounds, bounds) {
		a.meta.Gen++
		a.meta.Bounds, a.metaDirty = bounds, true
	}
	return nil
}

// migrateAggregates splits the single aggregates value of earlier versions,
// if the unit has one, into series keys, in the batch's transaction, and
// deletes it. Its names keep their series whatever the cap.
func (b *Batch) migrateAggregates() error {
	tag, p := aggregatesTag(b.unit.Stream), b.unit.Partition
	old := prefix(tag, p)
	var legacy Aggregates
	found, err := b.get(old, &legacy)
	if err != nil || !found {
		return err
	}
	a := b.agg
	if b.unit.Stream == Network {
		reset := !slices.Equal(legacy.LatencyBounds, a.meta.Bounds)
		for _, s := range legacy.Network {
			if reset {
				s.Latency = Histogram{}
			}
			k := aggSeriesKey(tag, p, s.Operation, s.Status)
			if _, dup := a.network[string(k)]; !dup {
				a.order = append(a.order, string(k))
			}
			a.network[string(k)] = &storedNetworkSeries{NetworkSeries: *s, Gen: a.meta.Gen}
			b.addName(s.Operation)
		}
	} else {
		reset := !slices.Equal(legacy.DurationBounds, a.meta.Bounds)
		for _, s := range legacy.Events {
			if reset {
				s.Duration = Histogram{}
			}
			k := aggSeriesKey(tag, p, s.EventName, s.Status)
			if _, dup := a.events[string(k)]; !dup {
				a.order = append(a.order, string(k))
			}
			a.events[string(k)] = &storedEventSeries{EventSeries: *s, Gen: a.meta.Gen}
			b.addName(s.EventName)
		}
	}
	return b.del(old)
}

// eventSeries returns the batch's copy of a series, read on first touch.
func (b *Batch) eventSeries(name, status string) (*storedEventSeries, error) {
	a := b.agg
	k := aggSeriesKey(aggregatesTag(b.unit.Stream), b.unit.Partition, name, status)
	if s, ok := a.events[string(k)]; ok {
		return s, nil
	}
	s := &storedEventSeries{}
	found, err := b.get(k, s)
	switch {
	case err != nil:
		return nil, err
	case !found:
		*s = storedEventSeries{EventSeries: EventSeries{EventName: name, Status: status}, Gen: a.meta.Gen}
	case s.Gen != a.meta.Gen:
		s.Duration, s.Gen = Histogram{}, a.meta.Gen
	}
	a.events[string(k)] = s
	a.order = append(a.order, string(k))
	return s, nil
}

// networkSeries is eventSeries for network operations.
func (b *Batch) networkSeries(op, status string) (*storedNetworkSeries, error) {
	a := b.agg
	k := aggSeriesKey(aggregatesTag(b.unit.Stream), b.unit.Partition, op, status)
	if s, ok := a.network[string(k)]; ok {
		return s, nil
	}
	s := &storedNetworkSeries{}
	found, err := b.get(k, s)
	switch {
	case err != nil:
		return nil, err
	case !found:
		*s = storedNetworkSeries{NetworkSeries: NetworkSeries{Operation: op, Status: status}, Gen: a.meta.Gen}
	case s.Gen != a.meta.Gen:
		s.Latency, s.Gen = Histogram{}, a.meta.Gen
	}
	a.network[string(k)] = s
	a.order = append(a.order, string(k))
	return s, nil
}

func (b *Batch) aggregateEvent(m schemas.EventMetric) error {
	if err := b.loadAggregates(); err != nil {
		return err
	}
	name, err := b.labelFor(m.EventName)
	if err != nil {
		return err
	}
	s, err := b.eventSeries(name, string(m.Status))
	if err != nil {
		return err
	}
	s.Count++
	s.Retries += uint64(max(m.RetryCount, 0))
	if d, ok := observable(m.DurationSeconds); ok {
		s.Duration.observe(b.agg.meta.Bounds, d)
	}
	return nil
}

func (b *Batch) aggregateNetwork(m schemas.NetworkMetric) error {
	if err := b.loadAggregates(); err != nil {
		return err
	}
	op, err := b.labelFor(m.Operation)
	if err != nil {
		return err
	}
	s, err := b.networkSeries(op, string(m.Status))
	if err != nil {
		return err
	}
	s.Count++
	s.BytesSent += uint64(max(m.BytesSent, 0))
	s.BytesReceived += uint64(max(m.BytesReceived, 0))
	if l, ok := observable(m.LatencySeconds); ok {
		s.Latency.observe(b.agg.meta.Bounds, l)
	}
	return nil
}

// flushAggregates writes the series the batch touched, the names it added
// and the metadata if it changed; nothing else of the unit's aggregates.
func (b *Batch) flushAggregates() error {
	a := b.agg
	if a == nil {
		return nil
	}
	tag, p := aggregatesTag(b.unit.Stream), b.unit.Partition
	for _, name := range a.newNames {
		if err := b.set(aggNameKey(tag, p, name), nil); err != nil {
			return err
		}
	}
	for _, k := range a.order {
		var err error
		if s, ok := a.events[k]; ok {
			err = b.put([]byte(k), *s)
		} else {
			err = b.put([]byte(k), *a.network[k])
		}
		if err != nil {
			return err
		}
	}
	if a.metaDirty {
		return b.put(aggMetaKey(tag, p), a.meta)
	}
	return nil
}

// UnitAggregates is the aggregates of one owned unit.
type UnitAggregates struct {
	Unit Unit
	Aggregates
}

// Aggregates returns the aggregates of every owned unit, in stream and
// partition order, each unit's series in name and status order. Units that
// finished nothing yet are left out.
func (s *Store) Aggregates() ([]UnitAggregates, error) {
	var out []UnitAggregates
	err := s.db.View(func(txn *badger.Txn) error {
		for _, st := range []Stream{Events, Network} {
			for _, p := range s.Owned(st) {
				a, found, err := s.unitAggregates(txn, Unit{st, p})
				if err != nil {
					return err
				}
				if found {
					out = append(out, UnitAggregates{Unit: Unit{st, p}, Aggregates: a})
				}
			}
		}
		return nil
	})
	return out, err
}

// unitAggregates reads one unit's aggregates: its series keys, or the single
// value of an earlier version that no batch has migrated yet.
func (s *Store) unitAggregates(txn *badger.Txn, u Unit) (Aggregates, bool, error) {
	tag := aggregatesTag(u.Stream)
	var a Aggregates
	var meta aggMeta
	found, err := getValue(txn, aggMetaKey(tag, u.Partition), &meta)
	if err != nil {
		return a, false, err
	}
	if !found {
		found, err := getValue(txn, prefix(tag, u.Partition), &a)
		names := map[string]bool{}
		if u.Stream == Events {
			a.Network = nil
			for _, e := range a.Events {
				names[e.EventName] = true
			}
		} else {
			a.Events = nil
			for _, n := range a.Network {
				names[n.Operation] = true
			}
		}
		a.LabelValues = uint64(len(names)) // what the migration will count
		return a, found, err
	}
	a.LabelValues, a.Folded = meta.Names, meta.Folded
	if u.Stream == Network {
		a.DurationBounds, a.LatencyBounds = s.durationBounds, meta.Bounds
	} else {
		a.DurationBounds, a.LatencyBounds = meta.Bounds, s.latencyBounds
	}
	pre := key(tag, u.Partition, []byte{aggSeriesKind})
	it := txn.NewIterator(badger.IteratorOptions{Prefix: pre, PrefetchValues: true})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		err := it.Item().Value(func(v []byte) error {
			if u.Stream == Network {
				var ns storedNetworkSeries
				if err := decodeValue(k, v, &ns); err != nil {
					return err
				}
				if ns.Gen != meta.Gen {
					ns.Latency = Histogram{}
				}
				a.Network = append(a.Network, &ns.NetworkSeries)
				return nil
			}
			var es storedEventSeries
			if err := decodeValue(k, v, &es); err != nil {
				return err
			}
			if es.Gen != meta.Gen {
				es.Duration = Histogram{}
			}
			a.Events = append(a.Events, &es.EventSeries)
			return nil
		})
		if err != nil {
			return a, false, err
		}
	}
	return a, true, nil
}

// getValue reads and decodes key k of txn; false when it is not set.
func getValue(txn *badger.Txn, k []byte, into any) (bool, error) {
	item, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("cannot read key %q: %w", k, err)
	}
	return true, item.Value(func(v []byte) error { return decodeValue(k, v, into) })
}
