package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/pipetel/pipetel/schemas"
)

// Stored values of the hot path (pending entries, finished metrics, outbox
// items, aggregate series) are a compact binary encoding, version 1: a tag byte naming the
// type and version, a flags varint, then the fields in declaration order
// (strings and lists length-prefixed, integers as varints, times as
// seconds and nanoseconds, floats as 8 bytes). Values written as JSON by
// earlier versions start with '{' and still decode, so a store or a
// changelog from before reads as it was.
const (
	tagPendingEventV1   = 0xb1
	tagPendingNetworkV1 = 0xb2
	tagEventMetricV1    = 0xb3
	tagNetworkMetricV1  = 0xb4
	tagOutboxItemV1     = 0xb5
	tagEventSeriesV1    = 0xb6
	tagNetworkSeriesV1  = 0xb7
	tagAggMetaV1        = 0xb8
)

// errShortValue is wrapped by decode errors of truncated values.
var errShortValue = errors.New("value ends early")

// encodeValue encodes v for storage: the hot-path types in binary, the rest
// (retry statistics) as JSON.
func encodeValue(v any) ([]byte, error) {
	switch v := v.(type) {
	case PendingEvent:
		return appendPendingEvent(make([]byte, 0, 96), v), nil
	case PendingNetwork:
		return appendPendingNetwork(make([]byte, 0, 96), v), nil
	case schemas.EventMetric:
		return appendEventMetric(make([]byte, 0, 128), v), nil
	case schemas.NetworkMetric:
		return appendNetworkMetric(make([]byte, 0, 128), v), nil
	case outboxItem:
		return appendOutboxItem(make([]byte, 0, 144), v), nil
	case storedEventSeries:
		return appendEventSeries(make([]byte, 0, 64), v), nil
	case storedNetworkSeries:
		return appendNetworkSeries(make([]byte, 0, 64), v), nil
	case aggMeta:
		return appendAggMeta(make([]byte, 0, 160), v), nil
	}
	return json.Marshal(v)
}

// decodeValue decodes a stored value; a value that does not decode means the
// store is damaged or was written by an incompatible version, and the error
// names the key.
func decodeValue(key []byte, val []byte, into any) error {
	var err error
	if len(val) > 0 && val[0] != '{' {
		r := reader{b: val}
		switch into := into.(type) {
		case *PendingEvent:
			*into, err = r.pendingEvent()
		case *PendingNetwork:
			*into, err = r.pendingNetwork()
		case *schemas.EventMetric:
			*into, err = r.eventMetric()
		case *schemas.NetworkMetric:
			*into, err = r.networkMetric()
		case *outboxItem:
			*into, err = r.outboxItem()
		case *storedEventSeries:
			*into, err = r.eventSeries()
		case *storedNetworkSeries:
			*into, err = r.networkSeries()
		case *aggMeta:
			*into, err = r.aggMeta()
		default:
			err = json.Unmarshal(val, into)
		}
		if err == nil && len(r.b) != 0 {
			err = fmt.Errorf("%d bytes after the value", len(r.b))
		}
	} else {
		err = json.Unmarshal(val, into)
	}
	if err != nil {
		return fmt.Errorf("cannot decode stored value of key %q: %w", key, err)
	}
	return nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

func appendFloat(b []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
}

func flag(set bool, bit uint64) uint64 {
	if set {
		return bit
	}
	return 0
}

const (
	fHasStart = 1 << iota
	fHasEnd
	fProcessID
	fStartTime
	fEndTime
	fFirstSeen
	fDuration
)

func appendPendingEvent(b []byte, pe PendingEvent) []byte {
	b = append(b, tagPendingEventV1)
	b = binary.AppendUvarint(b, flag(pe.HasStart, fHasStart)|flag(pe.HasEnd, fHasEnd)|flag(pe.ProcessID != nil, fProcessID)|
		flag(!pe.StartTime.IsZero(), fStartTime)|flag(!pe.EndTime.IsZero(), fEndTime)|flag(!pe.FirstSeen.IsZero(), fFirstSeen))
	b = appendString(b, pe.EventName)
	b = appendString(b, pe.PipelineID)
	b = appendString(b, pe.Error)
	if pe.ProcessID != nil {
		b = binary.AppendVarint(b, *pe.ProcessID)
	}
	for _, t := range []time.Time{pe.StartTime, pe.EndTime, pe.FirstSeen} {
		if !t.IsZero() {
			b = appendTime(b, t)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(pe.Retries)))
	for _, r := range pe.Retries {
		b = binary.AppendVarint(b, r)
	}
	b = binary.AppendVarint(b, int64(pe.UntrackedRetries))
	return binary.AppendVarint(b, pe.Deadline)
}

func appendPendingNetwork(b []byte, pn PendingNetwork) []byte {
	b = append(b, tagPendingNetworkV1)
	b = binary.AppendUvarint(b, flag(pn.HasStart, fHasStart)|flag(pn.HasEnd, fHasEnd)|
		flag(!pn.StartTime.IsZero(), fStartTime)|flag(!pn.EndTime.IsZero(), fEndTime)|flag(!pn.FirstSeen.IsZero(), fFirstSeen))
	b = appendString(b, pn.Host)
	b = binary.AppendVarint(b, int64(pn.Port))
	b = appendString(b, pn.Operation)
	b = appendString(b, pn.Error)
	for _, t := range []time.Time{pn.StartTime, pn.EndTime, pn.FirstSeen} {
		if !t.IsZero() {
			b = appendTime(b, t)
		}
	}
	b = binary.AppendVarint(b, pn.BytesSent)
	b = binary.AppendVarint(b, pn.BytesReceived)
	return binary.AppendVarint(b, pn.Deadline)
}

func appendEventMetric(b []byte, m schemas.EventMetric) []byte {
	b = append(b, tagEventMetricV1)
	b = appendEventMetricBody(b, m)
	return b
}

func appendEventMetricBody(b []byte, m schemas.EventMetric) []byte {
	b = binary.AppendUvarint(b, flag(m.ProcessID != nil, fProcessID)|flag(m.StartTime != nil, fStartTime)|
		flag(m.EndTime != nil, fEndTime)|flag(m.DurationSeconds != nil, fDuration))
	for _, s := range []string{m.TaskID, m.EventName, m.PipelineID, string(m.Status), m.Error} {
		b = appendString(b, s)
	}
	if m.ProcessID != nil {
		b = binary.AppendVarint(b, *m.ProcessID)
	}
	if m.StartTime != nil {
		b = appendTime(b, *m.StartTime)
	}
	if m.EndTime != nil {
		b = appendTime(b, *m.EndTime)
	}
	if m.DurationSeconds != nil {
		b = appendFloat(b, *m.DurationSeconds)
	}
	return binary.AppendVarint(b, int64(m.RetryCount))
}

func appendNetworkMetric(b []byte, m schemas.NetworkMetric) []byte {
	b = append(b, tagNetworkMetricV1)
	return appendNetworkMetricBody(b, m)
}

func appendNetworkMetricBody(b []byte, m schemas.NetworkMetric) []byte {
	b = binary.AppendUvarint(b, flag(m.StartTime != nil, fStartTime)|flag(m.EndTime != nil, fEndTime)|flag(m.LatencySeconds != nil, fDuration))
	for _, s := range []string{m.TaskID, m.OpID, m.Host, m.Operation, string(m.Status), m.Error} {
		b = appendString(b, s)
	}
	b = binary.AppendVarint(b, int64(m.Port))
	if m.StartTime != nil {
		b = appendTime(b, *m.StartTime)
	}
	if m.EndTime != nil {
		b = appendTime(b, *m.EndTime)
	}
	if m.LatencySeconds != nil {
		b = appendFloat(b, *m.LatencySeconds)
	}
	b = binary.AppendVarint(b, m.BytesSent)
	return binary.AppendVarint(b, m.BytesReceived)
}

// An outbox item is its enqueue time, a kind byte ('e' or 'n') and the
// metric's body.
func appendOutboxItem(b []byte, it outboxItem) []byte {
	b = append(b, tagOutboxItemV1)
	b = binary.AppendVarint(b, it.Enqueued)
	if it.Event != nil {
		return appendEventMetricBody(append(b, 'e'), *it.Event)
	}
	if it.Network != nil {
		return appendNetworkMetricBody(append(b, 'n'), *it.Network)
	}
	return append(b, 0)
}

// reader decodes one binary value, failing on anything short or out of
// range rather than panicking: stored bytes come from disk and from the
// changelog.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%s: %w", what, errShortValue)
	}
	r.b = nil
}

func (r *reader) tag(want byte, name string) {
	if len(r.b) == 0 || r.b[0] != want {
		if r.err == nil {
			got := "nothing"
			if len(r.b) > 0 {
				got = fmt.Sprintf("tag 0x%02x", r.b[0])
			}
			r.err = fmt.Errorf("got %s, expected %s (tag 0x%02x)", got, name, want)
		}
		r.b = nil
		return
	}
	r.b = r.b[1:]
}

func (r *reader) byte1(what string) byte {
	if len(r.b) == 0 {
		r.fail(what)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint(what string) uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint(what string) int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) int(what string) int {
	v := r.varint(what)
	if v < math.MinInt32 || v > math.MaxInt32 {
		if r.err == nil {
			r.err = fmt.Errorf("%s: %d out of range", what, v)
		}
		r.b = nil
		return 0
	}
	return int(v)
}

func (r *reader) str(what string) string {
	n := r.uvarint(what)
	if r.err != nil || n > uint64(len(r.b)) {
		r.fail(what)
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) time(what string) time.Time {
	sec := r.varint(what)
	ns := r.uvarint(what)
	if r.err == nil && ns >= 1e9 {
		r.err = fmt.Errorf("%s: %d nanoseconds, expected under 1e9", what, ns)
		r.b = nil
	}
	// Years 1 to 9999, what RFC 3339 (and so the record contract and the
	// API's JSON) can write.
	if r.err == nil && (sec < -62135596800 || sec > 253402300799) {
		r.err = fmt.Errorf("%s: %d seconds, expected a time in the years 1 to 9999", what, sec)
		r.b = nil
	}
	if r.err != nil {
		return time.Time{}
	}
	return time.Unix(sec, int64(ns)).UTC()
}

func (r *reader) timePtr(set bool, what string) *time.Time {
	if !set {
		return nil
	}
	t := r.time(what)
	return &t
}

func (r *reader) float(what string) float64 {
	if len(r.b) < 8 {
		r.fail(what)
		return 0
	}
	f := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	if math.IsNaN(f) || math.IsInf(f, 0) {
		if r.err == nil {
			r.err = fmt.Errorf("%s: %v, expected a finite number", what, f)
		}
		r.b = nil
		return 0
	}
	return f
}

func (r *reader) pendingEvent() (PendingEvent, error) {
	var pe PendingEvent
	r.tag(tagPendingEventV1, "a pending event")
	f := r.uvarint("flags")
	pe.HasStart, pe.HasEnd = f&fHasStart != 0, f&fHasEnd != 0
	pe.EventName, pe.PipelineID, pe.Error = r.str("event_name"), r.str("pipeline_id"), r.str("error")
	if f&fProcessID != 0 {
		id := r.varint("process_id")
		pe.ProcessID = &id
	}
	if f&fStartTime != 0 {
		pe.StartTime = r.time("start time")
	}
	if f&fEndTime != 0 {
		pe.EndTime = r.time("end time")
	}
	if f&fFirstSeen != 0 {
		pe.FirstSeen = r.time("first seen")
	}
	n := r.uvarint("retries")
	if n > uint64(len(r.b)) { // each retry takes at least a byte
		r.fail("retries")
	}
	if r.err == nil && n > 0 {
		pe.Retries = make([]int64, n)
		for i := range pe.Retries {
			pe.Retries[i] = r.varint("retry")
		}
	}
	pe.UntrackedRetries = r.int("untracked retries")
	pe.Deadline = r.varint("deadline")
	return pe, r.err
}

func (r *reader) pendingNetwork() (PendingNetwork, error) {
	var pn PendingNetwork
	r.tag(tagPendingNetworkV1, "a pending network operation")
	f := r.uvarint("flags")
	pn.HasStart, pn.HasEnd = f&fHasStart != 0, f&fHasEnd != 0
	pn.Host = r.str("host")
	pn.Port = r.int("port")
	pn.Operation, pn.Error = r.str("operation"), r.str("error")
	if f&fStartTime != 0 {
		pn.StartTime = r.time("start time")
	}
	if f&fEndTime != 0 {
		pn.EndTime = r.time("end time")
	}
	if f&fFirstSeen != 0 {
		pn.FirstSeen = r.time("first seen")
	}
	pn.BytesSent, pn.BytesReceived = r.varint("bytes_sent"), r.varint("bytes_received")
	pn.Deadline = r.varint("deadline")
	return pn, r.err
}

func (r *reader) eventMetric() (schemas.EventMetric, error) {
	r.tag(tagEventMetricV1, "an event metric")
	return r.eventMetricBody()
}

func (r *reader) eventMetricBody() (schemas.EventMetric, error) {
	var m schemas.EventMetric
	f := r.uvarint("flags")
	m.TaskID, m.EventName, m.PipelineID = r.str("task_id"), r.str("event_name"), r.str("pipeline_id")
	m.Status, m.Error = schemas.Status(r.str("status")), r.str("error")
	if f&fProcessID != 0 {
		id := r.varint("process_id")
		m.ProcessID = &id
	}
	m.StartTime = r.timePtr(f&fStartTime != 0, "start_time")
	m.EndTime = r.timePtr(f&fEndTime != 0, "end_time")
	if f&fDuration != 0 {
		d := r.float("duration_seconds")
		m.DurationSeconds = &d
	}
	m.RetryCount = r.int("retry_count")
	return m, r.err
}

func (r *reader) networkMetric() (schemas.NetworkMetric, error) {
	r.tag(tagNetworkMetricV1, "a network metric")
	return r.networkMetricBody()
}

func (r *reader) networkMetricBody() (schemas.NetworkMetric, error) {
	var m schemas.NetworkMetric
	f := r.uvarint("flags")
	m.TaskID, m.OpID, m.Host, m.Operation = r.str("task_id"), r.str("op_id"), r.str("host"), r.str("operation")
	m.Status, m.Error = schemas.Status(r.str("status")), r.str("error")
	m.Port = r.int("port")
	m.StartTime = r.timePtr(f&fStartTime != 0, "start_time")
	m.EndTime = r.timePtr(f&fEndTime != 0, "end_time")
	if f&fDuration != 0 {
		l := r.float("latency_seconds")
		m.LatencySeconds = &l
	}
	m.BytesSent, m.BytesReceived = r.varint("bytes_sent"), r.varint("bytes_received")
	return m, r.err
}

func (r *reader) outboxItem() (outboxItem, error) {
	var it outboxItem
	r.tag(tagOutboxItemV1, "an outbox item")
	it.Enqueued = r.varint("enqueued")
	switch kind := r.byte1("kind"); {
	case r.err != nil:
	case kind == 'e':
		m, _ := r.eventMetricBody()
		it.Event = &m
	case kind == 'n':
		m, _ := r.networkMetricBody()
		it.Network = &m
	default:
		r.err = fmt.Errorf("outbox item kind 0x%02x, expected 'e' or 'n'", kind)
		r.b = nil
	}
	return it, r.err
}
