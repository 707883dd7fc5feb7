package state

import (
	"encoding/binary"
	"fmt"
)

// Aggregate values, version 1, in the style of codec.go: a tag byte, a
// flags varint (none defined yet; a later version can add fields behind
// one), then the fields. A histogram is its bucket count, the counts as
// varints and the sum as 8 bytes.

func appendHistogram(b []byte, h Histogram) []byte {
	b = binary.AppendUvarint(b, uint64(len(h.Counts)))
	for _, c := range h.Counts {
		b = binary.AppendUvarint(b, c)
	}
	return appendFloat(b, h.Sum)
}

func appendEventSeries(b []byte, s storedEventSeries) []byte {
	b = append(b, tagEventSeriesV1)
	b = binary.AppendUvarint(b, 0)
	b = appendString(b, s.EventName)
	b = appendString(b, s.Status)
	b = binary.AppendUvarint(b, s.Count)
	b = binary.AppendUvarint(b, s.Retries)
	b = binary.AppendUvarint(b, s.Gen)
	return appendHistogram(b, s.Duration)
}

func appendNetworkSeries(b []byte, s storedNetworkSeries) []byte {
	b = append(b, tagNetworkSeriesV1)
	b = binary.AppendUvarint(b, 0)
	b = appendString(b, s.Operation)
	b = appendString(b, s.Status)
	b = binary.AppendUvarint(b, s.Count)
	b = binary.AppendUvarint(b, s.BytesSent)
	b = binary.AppendUvarint(b, s.BytesReceived)
	b = binary.AppendUvarint(b, s.Gen)
	return appendHistogram(b, s.Latency)
}

func appendAggMeta(b []byte, m aggMeta) []byte {
	b = append(b, tagAggMetaV1)
	b = binary.AppendUvarint(b, 0)
	b = binary.AppendUvarint(b, m.Gen)
	b = binary.AppendUvarint(b, uint64(len(m.Bounds)))
	for _, f := range m.Bounds {
		b = appendFloat(b, f)
	}
	b = binary.AppendUvarint(b, m.Names)
	return binary.AppendUvarint(b, m.Folded)
}

// noFlags reads the flags varint of a value that defines none: set flags
// mean a later version wrote it, whose fields this one cannot read.
func (r *reader) noFlags() {
	if f := r.uvarint("flags"); f != 0 && r.err == nil {
		r.err = fmt.Errorf("flags 0x%x, expected none (written by a later version?)", f)
		r.b = nil
	}
}

func (r *reader) histogram(what string) Histogram {
	var h Histogram
	n := r.uvarint(what)
	if n > uint64(len(r.b)) { // each count takes at least a byte
		r.fail(what)
	}
	if r.err == nil && n > 0 {
		h.Counts = make([]uint64, n)
		for i := range h.Counts {
			h.Counts[i] = r.uvarint(what)
		}
	}
	h.Sum = r.float(what + " sum")
	return h
}

func (r *reader) eventSeries() (storedEventSeries, error) {
	var s storedEventSeries
	r.tag(tagEventSeriesV1, "an event series")
	r.noFlags()
	s.EventName, s.Status = r.str("event_name"), r.str("status")
	s.Count, s.Retries = r.uvarint("count"), r.uvarint("retries")
	s.Gen = r.uvarint("bounds generation")
	s.Duration = r.histogram("duration")
	return s, r.err
}

func (r *reader) networkSeries() (storedNetworkSeries, error) {
	var s storedNetworkSeries
	r.tag(tagNetworkSeriesV1, "a network series")
	r.noFlags()
	s.Operation, s.Status = r.str("operation"), r.str("status")
	s.Count, s.BytesSent, s.BytesReceived = r.uvarint("count"), r.uvarint("bytes_sent"), r.uvarint("bytes_received")
	s.Gen = r.uvarint("bounds generation")
	s.Latency = r.histogram("latency")
	return s, r.err
}

func (r *reader) aggMeta() (aggMeta, error) {
	var m aggMeta
	r.tag(tagAggMetaV1, "aggregate metadata")
	r.noFlags()
	m.Gen = r.uvarint("bounds generation")
	n := r.uvarint("bounds")
	if n > uint64(len(r.b))/8 {
		r.fail("bounds")
	}
	if r.err == nil && n > 0 {
		m.Bounds = make([]float64, n)
		for i := range m.Bounds {
			m.Bounds[i] = r.float("bound")
		}
	}
	m.Names, m.Folded = r.uvarint("label values"), r.uvarint("folded")
	return m, r.err
}
