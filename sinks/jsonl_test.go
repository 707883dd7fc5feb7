package sinks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pipetel/pipetel/schemas"
)

func newTestJSONL(t *testing.T, cfg JSONLConfig, opts ...Option) *JSONL {
	t.Helper()
	j, err := NewJSONL(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestJSONLLines: one line per metric, metric_type first, the query API's
// fields after it, to a file and to standard output alike.
func TestJSONLLines(t *testing.T) {
	// Fixed dates are safe: the sink only encodes what it is given; no
	// store, deadline or retention sees these metrics.
	pid := int64(42)
	events := []schemas.EventMetric{
		{TaskID: "t-1", EventName: "Transform", PipelineID: "p", ProcessID: &pid, StartTime: tp(t, "2025-01-02T03:04:05Z"),
			EndTime: tp(t, "2025-01-02T03:04:06.5Z"), DurationSeconds: fp(1.5), Status: schemas.StatusCompleted, RetryCount: 2},
		{TaskID: "t-2", EventName: "Load", StartTime: tp(t, "2025-01-02T03:04:05Z"), Status: schemas.StatusTimedOut, Error: "no end \"record\""},
	}
	network := []schemas.NetworkMetric{
		{TaskID: "t-1", OpID: "op-1", Host: "db", Port: 5432, Operation: "query", StartTime: tp(t, "2025-01-02T03:04:05Z"),
			EndTime: tp(t, "2025-01-02T03:04:05.25Z"), LatencySeconds: fp(0.25), BytesSent: 10, BytesReceived: 20, Status: schemas.StatusCompleted},
	}
	want := `{"metric_type":"event","task_id":"t-1","event_name":"Transform","pipeline_id":"p","process_id":42,"start_time":"2025-01-02T03:04:05Z","end_time":"2025-01-02T03:04:06.5Z","duration_seconds":1.5,"status":"completed","error":"","retry_count":2}
{"metric_type":"event","task_id":"t-2","event_name":"Load","pipeline_id":"","process_id":null,"start_time":"2025-01-02T03:04:05Z","end_time":null,"duration_seconds":null,"status":"timed_out","error":"no end \"record\"","retry_count":0}
{"metric_type":"network","task_id":"t-1","op_id":"op-1","host":"db","port":5432,"operation":"query","start_time":"2025-01-02T03:04:05Z","end_time":"2025-01-02T03:04:05.25Z","latency_seconds":0.25,"bytes_sent":10,"bytes_received":20,"status":"completed","error":""}
`
	ctx := context.Background()
	var stdout strings.Builder
	path := filepath.Join(t.TempDir(), "metrics.jsonl")
	for _, j := range []*JSONL{newTestJSONL(t, JSONLConfig{Path: path}), newTestJSONL(t, JSONLConfig{Path: "-"}, WithOutput(&stdout))} {
		if err := j.PublishEvents(ctx, events); err != nil {
			t.Fatal(err)
		}
		if err := j.PublishNetwork(ctx, network); err != nil {
			t.Fatal(err)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if got := readFile(t, path); got != want {
		t.Errorf("file:\n%s\nwant:\n%s", got, want)
	}
	if got := stdout.String(); got != want {
		t.Errorf("standard output:\n%s\nwant:\n%s", got, want)
	}
	j := newTestJSONL(t, JSONLConfig{Path: path})
	j.Close()
	if err := j.PublishEvents(ctx, events); err == nil || err.Error() != fmt.Sprintf("cannot write jsonl file %q: the publisher is closed", path) {
		t.Errorf("publish after Close: %v", err)
	}
}

// TestJSONLRotation: a file is rotated before a line would take it past
// max_bytes (a file of exactly max_bytes is kept), max_files rotated files
// are kept, the oldest dropped, and the size of a file that existed at
// start counts.
func TestJSONLRotation(t *testing.T) {
	line := func(i int) string {
		return fmt.Sprintf(`{"metric_type":"event","task_id":"task-%d","event_name":"E","pipeline_id":"","process_id":null,`+
			`"start_time":null,"end_time":null,"duration_seconds":null,"status":"completed","error":"","retry_count":0}`+"\n", i)
	}
	metric := func(i int) schemas.EventMetric {
		return schemas.EventMetric{TaskID: fmt.Sprintf("task-%d", i), EventName: "E", Status: schemas.StatusCompleted}
	}
	size := int64(len(line(1)))
	for _, tc := range []struct {
		name     string
		maxBytes int64
		existing int // lines in the file before start
		batches  []int
		want     []string // path, path.1, path.2: lines by number
	}{
		{"two lines a file", 2 * size, 0, []int{3, 4}, []string{"7", "56", "34"}},
		{"one byte short of two", 2*size - 1, 0, []int{2, 1}, []string{"3", "2", "1"}},
		{"one line each, lines 1-3 dropped", size, 0, []int{6}, []string{"6", "5", "4"}},
		{"a line longer than max_bytes", size / 2, 0, []int{1, 1}, []string{"2", "1", ""}},
		{"existing content counts", 2 * size, 1, []int{3}, []string{"23", "01", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.jsonl")
			if tc.existing > 0 {
				if err := os.WriteFile(path, []byte(line(0)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			j := newTestJSONL(t, JSONLConfig{Path: path, MaxBytes: tc.maxBytes, MaxFiles: 2})
			next := 1
			for _, n := range tc.batches {
				var ms []schemas.EventMetric
				for range n {
					ms = append(ms, metric(next))
					next++
				}
				if err := j.PublishEvents(context.Background(), ms); err != nil {
					t.Fatal(err)
				}
			}
			for i, lines := range tc.want {
				p := path
				if i > 0 {
					p = fmt.Sprintf("%s.%d", path, i)
				}
				var want strings.Builder
				for _, c := range lines {
					want.WriteString(line(int(c - '0')))
				}
				got, err := os.ReadFile(p)
				if lines == "" && errors.Is(err, os.ErrNotExist) {
					continue
				}
				if err != nil || string(got) != want.String() {
					t.Errorf("%s: %v\n%s\nwant lines %q:\n%s", filepath.Base(p), err, got, lines, want.String())
				}
			}
			if _, err := os.Stat(path + ".3"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s.3 exists (max_files 2): %v", path, err)
			}
		})
	}
}

// TestJSONLErrors: configuration errors name the field, its value and what
// is expected; an unwritable path fails at start, naming it; a failed write
// names the file and is retryable (not ErrPermanent).
func TestJSONLErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  JSONLConfig
		want string
	}{
		{JSONLConfig{}, `sinks.jsonl.path: got "", expected a file to append to, or "-" for standard output`},
		{JSONLConfig{Path: "-", MaxBytes: -1}, "sinks.jsonl.max_bytes: got -1, expected 0 (default 104857600) or more"},
		{JSONLConfig{Path: "-", MaxFiles: -2}, "sinks.jsonl.max_files: got -2, expected 0 (default 5) or more"},
	} {
		if _, err := NewJSONL(tc.cfg); err == nil || err.Error() != tc.want {
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.want)
		}
	}
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(notDir, "m.jsonl")
	want := fmt.Sprintf("cannot open jsonl file %q: open %s: not a directory", path, path)
	if _, err := NewJSONL(JSONLConfig{Path: path}); err == nil || err.Error() != want {
		t.Errorf("unwritable path: error %v, want %q", err, want)
	}
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full to fail a write")
	}
	j := newTestJSONL(t, JSONLConfig{Path: "/dev/full"})
	err := j.PublishEvents(context.Background(), []schemas.EventMetric{{TaskID: "t", Status: schemas.StatusCompleted}})
	if err == nil || !strings.HasPrefix(err.Error(), `cannot write jsonl file "/dev/full": `) || !errors.Is(err, syscall.ENOSPC) || errors.Is(err, ErrPermanent) {
		t.Errorf("write to a full disk: error %v, want a retryable ENOSPC naming the file", err)
	}
}
