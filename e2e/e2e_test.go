package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/internal/testbroker"
	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/schemas"
)

// listAll pages through a list endpoint and returns every item.
func listAll[T any](t *testing.T, a *runningApp, path string) []T {
	t.Helper()
	var all []T
	cursor := ""
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	for pages := 0; ; pages++ {
		var page schemas.Page[T]
		url := path + sep + "limit=97"
		if cursor != "" {
			url += "&cursor=" + cursor
		}
		if code := a.getJSON(t, url, &page); code != http.StatusOK {
			t.Fatalf("GET %s: status %d", url, code)
		}
		all = append(all, page.Items...)
		if page.Next == "" {
			return all
		}
		if pages > 10000 {
			t.Fatalf("GET %s: pagination does not end", path)
		}
		cursor = page.Next
	}
}

func TestEndToEnd(t *testing.T) {
	b := testbroker.Start(t)
	tt := newTestTopics(t, b, 4)
	a := startApp(t, testConfig(b, tt, t.TempDir()))
	clock := &fakeClock{}
	p := newProducer(t, b, tt, clock)
	s := scenario{prefix: "e2e", base: testclock.Now().Add(-2 * time.Hour).Truncate(time.Millisecond)}
	const n = 1000
	s.emit(t, p, clock, 0, n)
	want := s.expect(n)

	// Repeated records change nothing: the same end, start and retry again.
	clock.set(s.start(5).Add(s.duration(5)))
	must(t, p.Logger().EndEvent(context.Background(), s.taskID(5), nil))
	clock.set(s.start(9).Add(time.Microsecond))
	must(t, p.Logger().RecordRetry(context.Background(), s.taskID(9)))
	must(t, p.Flush(context.Background()))

	// Invalid records are skipped, counted and dead-lettered.
	w := &kafka.Writer{Addr: kafka.TCP(b.Addrs...), Topic: tt.events, RequiredAcks: kafka.RequireAll, Transport: &kafka.Transport{}, BatchTimeout: time.Millisecond}
	defer w.Close()
	invalid := []kafka.Message{
		{Key: []byte("bad-1"), Value: []byte(`{"schema":"pipetel.event/v1","kind":"start","task_id":"bad-1","time":"yesterday","event_name":"x"}`)},
		{Key: []byte("bad-2"), Value: []byte(`not json`)},
		{Key: []byte("bad-3"), Value: []byte(`{"schema":"pipetel.event/v2","kind":"start","task_id":"bad-3"}`)},
		// A task_id Badger could not take as a key (over 65 000 bytes) is
		// rejected by the decoder and dead-lettered, so the partition goes on.
		{Key: []byte("bad-4"), Value: []byte(`{"schema":"pipetel.event/v1","kind":"start","task_id":"` + strings.Repeat("x", 65000) + `","event_name":"x",` +
			`"time":"` + s.base.Format(time.RFC3339Nano) + `"}`)},
		// A valid record keyed by something else than its task_id would
		// split the task's join across partitions.
		{Key: []byte("bad-5"), Value: []byte(`{"schema":"pipetel.event/v1","kind":"retry","task_id":"bad-5-other","time":"` + s.base.Format(time.RFC3339Nano) + `"}`)},
	}
	must(t, w.WriteMessages(context.Background(), invalid...))

	waitFor(t, 60*time.Second, "every task and operation finished and delivered", func() (bool, string) {
		f := a.scrape(t)
		ev := sumMetric(f, "pipetel_finished_total", map[string]string{"stream": "events"})
		nw := sumMetric(f, "pipetel_finished_total", map[string]string{"stream": "network"})
		bad := sumMetric(f, "pipetel_invalid_records_total", nil)
		depth := sumMetric(f, "pipetel_outbox_depth", nil)
		return ev == n && nw == float64(want.ops) && bad == 5 && depth == 0,
			fmt.Sprintf("events %v network %v invalid %v outbox %v", ev, nw, bad, depth)
	})

	t.Run("events", func(t *testing.T) {
		all := listAll[schemas.EventMetric](t, a, "/api/v1/events")
		if len(all) != n {
			t.Fatalf("listed %d events, want %d", len(all), n)
		}
		seen := map[string]bool{}
		for _, m := range all {
			if seen[m.TaskID] {
				t.Fatalf("task %s listed twice", m.TaskID)
			}
			seen[m.TaskID] = true
			var i int
			fmt.Sscanf(strings.TrimPrefix(m.TaskID, "e2e-"), "%d", &i)
			s.checkEvent(t, i, m)
		}
	})
	t.Run("failed", func(t *testing.T) {
		failed := listAll[schemas.EventMetric](t, a, "/api/v1/events?status=failed")
		if len(failed) != want.failed {
			t.Fatalf("%d failed events, want %d", len(failed), want.failed)
		}
		for _, m := range failed {
			if m.Status != schemas.StatusFailed || m.Error != "boom" {
				t.Fatalf("not a failed event: %s", describe(m))
			}
		}
	})
	t.Run("slow", func(t *testing.T) {
		slow := listAll[schemas.EventMetric](t, a, "/api/v1/events?slower_than=1.5s")
		if len(slow) != want.slowerThan1500ms {
			t.Fatalf("%d events slower than 1.5s, want %d", len(slow), want.slowerThan1500ms)
		}
		for _, m := range slow {
			if *m.DurationSeconds <= 1.5 {
				t.Fatalf("event of %vs listed as slower than 1.5s", *m.DurationSeconds)
			}
		}
	})
	t.Run("retries", func(t *testing.T) {
		var got schemas.RetrySummary
		a.getJSON(t, "/api/v1/retries", &got)
		if got.TotalRetries != int64(want.retries) || got.EventsWithRetries != int64(want.withRetries) ||
			got.MaxRetries != int64(want.maxRetries) || fmt.Sprint(got.EventsByRetryCount) != fmt.Sprint(want.byRetryCount) {
			t.Fatalf("retries %+v, want total %d, with %d, max %d, by count %v", got, want.retries, want.withRetries, want.maxRetries, want.byRetryCount)
		}
	})
	t.Run("network", func(t *testing.T) {
		failed := listAll[schemas.NetworkMetric](t, a, "/api/v1/network?status=failed")
		if len(failed) != want.opsFailed {
			t.Fatalf("%d failed operations, want %d", len(failed), want.opsFailed)
		}
		slow := listAll[schemas.NetworkMetric](t, a, "/api/v1/network?slower_than=1s")
		if len(slow) != want.opsSlowerThan1s {
			t.Fatalf("%d operations slower than 1s, want %d", len(slow), want.opsSlowerThan1s)
		}
		var m schemas.NetworkMetric
		if code := a.getJSON(t, "/api/v1/network/"+s.taskID(6)+"?op_id=q1", &m); code != 200 {
			t.Fatalf("status %d", code)
		}
		if m.Host != "db.internal" || m.Port != 5432 || m.Operation != "db_query" || m.BytesSent != 6 || m.BytesReceived != 12 ||
			*m.LatencySeconds != s.latency(6).Seconds() || m.Status != schemas.StatusCompleted {
			t.Fatalf("operation of task 6: %s", describe(m))
		}
	})
	t.Run("one event", func(t *testing.T) {
		var m schemas.EventMetric
		if code := a.getJSON(t, "/api/v1/events/"+s.taskID(7), &m); code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
		s.checkEvent(t, 7, m)
		var e map[string]string
		if code := a.getJSON(t, "/api/v1/events/no-such-task", &e); code != http.StatusNotFound || e["error"] != `no event with task_id "no-such-task"` {
			t.Fatalf("unknown task: %d %v", code, e)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		f := a.scrape(t)
		check := func(name string, labels map[string]string, want float64) {
			t.Helper()
			if got := sumMetric(f, name, labels); got != want {
				t.Errorf("%s%v = %v, want %v", name, labels, got, want)
			}
		}
		check("event_duration_seconds", nil, n)
		check("event_duration_seconds", map[string]string{"status": "failed"}, float64(want.failed))
		check("event_retries_total", nil, float64(want.retries))
		check("network_operations_total", map[string]string{"status": "failed"}, float64(want.opsFailed))
		check("network_latency_seconds", nil, float64(want.ops))
		check("pipetel_invalid_records_total", map[string]string{"code": "bad_time"}, 1)
		check("pipetel_invalid_records_total", map[string]string{"code": "malformed_json"}, 1)
		check("pipetel_invalid_records_total", map[string]string{"code": "unknown_schema"}, 1)
		check("pipetel_duplicate_records_total", map[string]string{"topic": tt.events}, 1)
		check("pipetel_late_records_total", map[string]string{"topic": tt.events}, 1)
		check("pipetel_open_tasks", nil, 0)
		check("pipetel_invalid_records_total", map[string]string{"code": "too_long"}, 1)
		check("pipetel_invalid_records_total", map[string]string{"code": "key_mismatch"}, 1)
		check("pipetel_dead_letters_total", nil, 5)
	})
	t.Run("dead letters", func(t *testing.T) {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: b.Addrs, Topic: tt.deadLetter, Partition: 0, MaxWait: 500 * time.Millisecond})
		defer r.Close()
		got := map[string]string{}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// Dead letters keep the key, so with Murmur2 they may sit on any
		// partition; read every partition until all five are found.
		for part := 0; part < 4 && len(got) < 5; part++ {
			pr := kafka.NewReader(kafka.ReaderConfig{Brokers: b.Addrs, Topic: tt.deadLetter, Partition: part, MaxWait: 500 * time.Millisecond})
			for {
				lctx, lcancel := context.WithTimeout(ctx, 2*time.Second)
				m, err := pr.ReadMessage(lctx)
				lcancel()
				if err != nil {
					break
				}
				hdr := map[string]string{}
				for _, h := range m.Headers {
					hdr[h.Key] = string(h.Value)
				}
				got[string(m.Key)] = hdr["pipetel-error-code"] + "|" + hdr["pipetel-source-topic"]
			}
			pr.Close()
		}
		want := map[string]string{"bad-1": "bad_time|" + tt.events, "bad-2": "malformed_json|" + tt.events, "bad-3": "unknown_schema|" + tt.events,
			"bad-4": "too_long|" + tt.events, "bad-5": "key_mismatch|" + tt.events}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("dead letters %v, want %v", got, want)
		}
	})
}

// TestPprofOptIn: /debug/pprof/ is served only with http.pprof: true.
func TestPprofOptIn(t *testing.T) {
	b := testbroker.Start(t)
	for _, on := range []bool{false, true} {
		tt := newTestTopics(t, b, 1)
		cfg := testConfig(b, tt, t.TempDir())
		cfg.HTTP.Pprof = on
		a := startApp(t, cfg)
		resp, err := http.Get("http://" + a.Addr() + "/debug/pprof/cmdline")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := http.StatusNotFound
		if on {
			want = http.StatusOK
		}
		if resp.StatusCode != want {
			t.Errorf("http.pprof %v: GET /debug/pprof/cmdline status %d, want %d", on, resp.StatusCode, want)
		}
		must(t, a.stop())
	}
}

// TestReadyz: /readyz answers 200 once the instance is a group member with
// no partition restoring (startApp waits for the membership; the
// partitions' state preparation is waited for here), 503 with the reason
// before.
func TestReadyz(t *testing.T) {
	b := testbroker.Start(t)
	tt := newTestTopics(t, b, 2)
	a := startApp(t, testConfig(b, tt, t.TempDir()))
	waitFor(t, 30*time.Second, "/readyz to answer 200", func() (bool, string) {
		resp, err := http.Get("http://" + a.Addr() + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.HasPrefix(string(body), "not ready: ") {
				t.Fatalf("GET /readyz: %d %q, want 200 or 503 with a reason", resp.StatusCode, body)
			}
			return false, string(body)
		}
		return string(body) == "ready\n", string(body)
	})
}

// TestBatchBytesBoundsBatches: processor.batch_bytes ends a batch before
// batch_size does; at one byte every record is a batch of its own.
func TestBatchBytesBoundsBatches(t *testing.T) {
	b := testbroker.Start(t)
	tt := newTestTopics(t, b, 1)
	clock := &fakeClock{}
	p := newProducer(t, b, tt, clock)
	ctx := context.Background()
	base := testclock.Now().Add(-time.Minute)
	const tasks = 10
	for i := range tasks {
		id := fmt.Sprintf("bytes-%d", i)
		clock.set(base.Add(time.Duration(i) * time.Second))
		must(t, p.Logger().StartEvent(ctx, "e", id))
		clock.set(base.Add(time.Duration(i)*time.Second + time.Millisecond))
		must(t, p.Logger().EndEvent(ctx, id, nil))
	}
	must(t, p.Flush(ctx))
	cfg := testConfig(b, tt, t.TempDir())
	cfg.Processor.BatchBytes = 1
	a := startApp(t, cfg)
	// Each batch's apply time is observed before its records are counted
	// as consumed, so once a scrape sees every record consumed a later one
	// sees every batch.
	waitFor(t, 60*time.Second, "every task finished and every record consumed", func() (bool, string) {
		fams := a.scrape(t)
		n, c := sumMetric(fams, "events_total", nil), sumMetric(fams, "pipetel_records_consumed_total", nil)
		return n == tasks && c == 2*tasks, fmt.Sprintf("events_total %v, pipetel_records_consumed_total %v", n, c)
	})
	if got := sumMetric(a.scrape(t), "pipetel_batch_apply_seconds", nil); got != 2*tasks {
		t.Errorf("%v batches applied, want %d: one per record", got, 2*tasks)
	}
}

// TestHTTPTimeouts: a keep-alive connection left idle past http.idle_timeout
// is closed by the server, and so is one that never finishes its request
// within http.read_timeout.
func TestHTTPTimeouts(t *testing.T) {
	b := testbroker.Start(t)
	tt := newTestTopics(t, b, 1)
	cfg := testConfig(b, tt, t.TempDir())
	cfg.HTTP.ReadTimeout, cfg.HTTP.IdleTimeout = 300*time.Millisecond, 300*time.Millisecond
	a := startApp(t, cfg)
	closedWithin := func(what string, conn net.Conn, d time.Duration) {
		t.Helper()
		started := time.Now()
		must(t, conn.SetReadDeadline(started.Add(d)))
		buf := make([]byte, 4096)
		for {
			_, err := conn.Read(buf)
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				t.Fatalf("%s: connection not closed by the server within %v: %v", what, d, err)
			}
		}
	}
	idle, err := net.Dial("tcp", a.Addr())
	must(t, err)
	defer idle.Close()
	_, err = io.WriteString(idle, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	must(t, err)
	closedWithin("idle keep-alive", idle, 5*time.Second) // reads the answer, then EOF once idle
	stalled, err := net.Dial("tcp", a.Addr())
	must(t, err)
	defer stalled.Close()
	_, err = io.WriteString(stalled, "GET /healthz HTTP/1.1\r\nHost: x\r\n") // the header never ends
	must(t, err)
	closedWithin("stalled request", stalled, 5*time.Second)
}
