package sinks

import (
	"math"
	"slices"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protowire"
)

// Prometheus remote write 1.0, encoded by hand: the prompb package would pull
// hundreds of modules into the build for these few fields.
//
//	message WriteRequest { repeated TimeSeries timeseries = 1; }
//	message TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
//	message Label        { string name = 1; string value = 2; }
//	message Sample       { double value = 1; int64 timestamp = 2; } // ms since epoch

// rwLabel is one label of a remote-write series.
type rwLabel struct{ Name, Value string }

// rwSeries is one series with the single sample a push sends.
type rwSeries struct {
	Labels    []rwLabel // sorted by name, __name__ included
	Value     float64
	Timestamp int64 // ms since the epoch
}

// appendWriteRequest appends the protobuf WriteRequest of series to b.
func appendWriteRequest(b []byte, series []rwSeries) []byte {
	var ts, lb []byte
	for _, s := range series {
		ts = ts[:0]
		for _, l := range s.Labels {
			lb = lb[:0]
			lb = protowire.AppendTag(lb, 1, protowire.BytesType)
			lb = protowire.AppendString(lb, l.Name)
			lb = protowire.AppendTag(lb, 2, protowire.BytesType)
			lb = protowire.AppendString(lb, l.Value)
			ts = protowire.AppendTag(ts, 1, protowire.BytesType)
			ts = protowire.AppendBytes(ts, lb)
		}
		var sample [1 + 8 + 1 + 10]byte
		sb := protowire.AppendTag(sample[:0], 1, protowire.Fixed64Type)
		sb = protowire.AppendFixed64(sb, math.Float64bits(s.Value))
		sb = protowire.AppendTag(sb, 2, protowire.VarintType)
		sb = protowire.AppendVarint(sb, uint64(s.Timestamp))
		ts = protowire.AppendTag(ts, 2, protowire.BytesType)
		ts = protowire.AppendBytes(ts, sb)

		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, ts)
	}
	return b
}

// familiesToSeries flattens gathered metric families into remote-write
// series stamped with ts and carrying extra labels: counters and gauges as
// themselves, classic histograms as _bucket{le} (cumulative, +Inf included),
// _sum and _count, summaries as {quantile}, _sum and _count. Native histogram
// buckets are not sent (remote write 1.0 has no field for them).
func familiesToSeries(mfs []*dto.MetricFamily, extra []rwLabel, ts int64) []rwSeries {
	var out []rwSeries
	add := func(name string, labels []*dto.LabelPair, value float64, more ...rwLabel) {
		ls := make([]rwLabel, 0, len(labels)+len(extra)+len(more)+1)
		ls = append(ls, rwLabel{"__name__", name})
		for _, l := range labels {
			// An empty value means no label, as when Prometheus scrapes.
			if l.GetValue() != "" {
				ls = append(ls, rwLabel{l.GetName(), l.GetValue()})
			}
		}
		ls = append(ls, more...)
		for _, e := range extra {
			// A label of the metric itself wins over an extra label.
			if !slices.ContainsFunc(ls, func(l rwLabel) bool { return l.Name == e.Name }) {
				ls = append(ls, e)
			}
		}
		slices.SortFunc(ls, func(a, b rwLabel) int { return strings.Compare(a.Name, b.Name) })
		out = append(out, rwSeries{Labels: ls, Value: value, Timestamp: ts})
	}
	for _, mf := range mfs {
		name := mf.GetName()
		for _, m := range mf.GetMetric() {
			lp := m.GetLabel()
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				add(name, lp, m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				add(name, lp, m.GetGauge().GetValue())
			case dto.MetricType_UNTYPED:
				add(name, lp, m.GetUntyped().GetValue())
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				h := m.GetHistogram()
				sawInf := false
				for _, b := range h.GetBucket() {
					sawInf = sawInf || math.IsInf(b.GetUpperBound(), +1)
					add(name+"_bucket", lp, float64(b.GetCumulativeCount()), rwLabel{"le", formatFloat(b.GetUpperBound())})
				}
				if !sawInf {
					add(name+"_bucket", lp, float64(h.GetSampleCount()), rwLabel{"le", "+Inf"})
				}
				add(name+"_sum", lp, h.GetSampleSum())
				add(name+"_count", lp, float64(h.GetSampleCount()))
			case dto.MetricType_SUMMARY:
				s := m.GetSummary()
				for _, q := range s.GetQuantile() {
					add(name, lp, q.GetValue(), rwLabel{"quantile", formatFloat(q.GetQuantile())})
				}
				add(name+"_sum", lp, s.GetSampleSum())
				add(name+"_count", lp, float64(s.GetSampleCount()))
			}
		}
	}
	return out
}

// formatFloat writes le and quantile values as the text exposition does.
func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, +1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
