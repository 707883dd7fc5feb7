package processor

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestSkippedOffsetsAreReported: offsets the reader jumped over (records
// the topic's retention deleted before they were read) are counted, and
// the first range per assignment is logged with its bounds.
func TestSkippedOffsetsAreReported(t *testing.T) {
	f := func(name string, start int64, offsets []int64, wantSkipped float64, wantLog string) {
		t.Helper()
		cfg := expiryConfig()
		m, err := newMetrics(prometheus.NewRegistry(), nil, cfg)
		if err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		p := &Processor{cfg: cfg, m: m, log: slog.New(slog.NewTextHandler(&logs, nil))}
		c := &partitionConsumer{p: p, unit: evUnit, topic: "events", next: max(start, -1)}
		for _, off := range offsets {
			c.checkOffset(off)
		}
		if got := testutil.ToFloat64(m.skipped.WithLabelValues("events")); got != wantSkipped {
			t.Errorf("%s: skipped %v, want %v", name, got, wantSkipped)
		}
		lines := strings.Count(logs.String(), "records skipped")
		if wantLog == "" && lines != 0 || wantLog != "" && (lines != 1 || !strings.Contains(logs.String(), wantLog)) {
			t.Errorf("%s: log %q, want one line with %q", name, logs.String(), wantLog)
		}
	}
	f("contiguous", 10, []int64{10, 11, 12}, 0, "")
	f("from the first offset the topic has", -2, []int64{500, 501}, 0, "")
	f("start deleted by retention", 10, []int64{40, 41}, 30, "from_offset=10 to_offset=39 records=30")
	f("two gaps, one line", 10, []int64{10, 11, 15, 16, 20}, 6, "from_offset=12 to_offset=14 records=3")
}
