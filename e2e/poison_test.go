package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	neturl "net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/internal/testbroker"
	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/processor"
	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/telemetry"
)

// partitionOf is the partition the SDK (Murmur2, as the Java client) gives
// key among n partitions.
func partitionOf(key []byte, n int) int {
	parts := make([]int, n)
	for i := range parts {
		parts[i] = i
	}
	return (&kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: key}, parts...)
}

// idsByPartition returns, for each of n partitions, perPartition distinct
// task ids made by name(k) for k = 0, 1, … that Murmur2 puts there.
func idsByPartition(n, perPartition int, name func(k int) string) [][]string {
	ids := make([][]string, n)
	for k, full := 0, 0; full < n; k++ {
		id := name(k)
		p := partitionOf([]byte(id), n)
		if len(ids[p]) < perPartition {
			ids[p] = append(ids[p], id)
			if len(ids[p]) == perPartition {
				full++
			}
		}
	}
	return ids
}

// readTopic returns every record of every partition of topic, from its
// first offset to its end offset as the broker reports it when called.
func readTopic(t *testing.T, b *testbroker.Broker, topic string, partitions int, timeout time.Duration) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var all []kafka.Message
	for p := range partitions {
		conn, err := kafka.DialLeader(ctx, "tcp", b.Addrs[0], topic, p)
		if err != nil {
			t.Fatalf("cannot reach the leader of %s/%d: %v", topic, p, err)
		}
		first, last, err := conn.ReadOffsets()
		conn.Close()
		if err != nil {
			t.Fatalf("cannot read the offsets of %s/%d: %v", topic, p, err)
		}
		if first >= last {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: b.Addrs, Topic: topic, Partition: p,
			MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 200 * time.Millisecond})
		if err := r.SetOffset(first); err != nil {
			t.Fatal(err)
		}
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				t.Fatalf("reading %s/%d at %d of [%d, %d): %v", topic, p, r.Offset(), first, last, err)
			}
			all = append(all, m)
			if m.Offset >= last-1 {
				break
			}
		}
		r.Close()
	}
	return all
}

// eventsWhere pages through /api/v1/events with query (e.g. "status=completed",
// or "") a thousand at a time.
func eventsWhere(t *testing.T, a *runningApp, query string) []schemas.EventMetric {
	t.Helper()
	var all []schemas.EventMetric
	cursor := ""
	for pages := 0; ; pages++ {
		url := "/api/v1/events?limit=1000"
		if query != "" {
			url += "&" + query
		}
		if cursor != "" {
			url += "&cursor=" + neturl.QueryEscape(cursor)
		}
		var page schemas.Page[schemas.EventMetric]
		if code := a.getJSON(t, url, &page); code != http.StatusOK {
			t.Fatalf("GET %s: status %d", url, code)
		}
		all = append(all, page.Items...)
		if page.Next == "" {
			return all
		}
		if pages > 1000 {
			t.Fatalf("GET /api/v1/events?%s: pagination does not end", query)
		}
		cursor = page.Next
	}
}

func headers(m kafka.Message) map[string]string {
	h := map[string]string{}
	for _, x := range m.Headers {
		h[x.Key] = string(x.Value)
	}
	return h
}

// longestLabel is the longest label value in a scrape.
func longestLabel(a *runningApp, t *testing.T) int {
	n := 0
	for _, f := range a.scrape(t) {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				n = max(n, len(l.GetValue()))
			}
		}
	}
	return n
}

// TestPoisonRecordsDoNotStopPartitions (issue 10): records built to hurt —
// a task_id of 65 000 bytes (the Badger key limit), a 1.5 MB value (over
// the broker's and the dead-letter record's bounds), 200 distinct 50 KB
// event names — and a burst of open tasks that all expire at once: every
// poison record is dead-lettered exactly once with its reason, every
// partition goes on (1 000 ordinary tasks on each finish), every burst task
// times out, and the instance keeps running.
func TestPoisonRecordsDoNotStopPartitions(t *testing.T) {
	b := testbroker.Start(t)
	const parts = 4
	tt := newTestTopics(t, b, parts)
	a := startApp(t, testConfig(b, tt, t.TempDir()))
	started := time.Now()
	ctx := context.Background()
	now := testclock.Now().Truncate(time.Millisecond)
	old := now.Add(-3 * time.Hour) // poison and burst records: past their timeout once the ordinary ones come
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

	// The poison records, keyed by their task_id as a producer would.
	type poison struct {
		msg  kafka.Message
		code schemas.Code
	}
	var poisons []poison
	longID := strings.Repeat("k", 65000)
	poisons = append(poisons, poison{code: schemas.CodeTooLong, msg: kafka.Message{Key: []byte(longID), Value: []byte(
		`{"schema":"pipetel.event/v1","kind":"start","task_id":"` + longID + `","event_name":"x","time":"` + ts(old) + `"}`)}})
	const bigLen = 1_500_000
	bigHead := `{"schema":"pipetel.event/v1","kind":"start","task_id":"poison-big","time":"` + ts(old) + `","event_name":"`
	big := []byte(bigHead + strings.Repeat("b", bigLen-len(bigHead)-2) + `"}`)
	if len(big) != bigLen {
		t.Fatalf("built a value of %d bytes, want %d", len(big), bigLen)
	}
	poisons = append(poisons, poison{code: schemas.CodeOversized, msg: kafka.Message{Key: []byte("poison-big"), Value: big}})
	for i := range 200 {
		id := fmt.Sprintf("poison-name-%03d", i)
		name := fmt.Sprintf("n%03d-", i) + strings.Repeat(string(rune('a'+i%26)), 50_000)
		poisons = append(poisons, poison{code: schemas.CodeTooLong, msg: kafka.Message{Key: []byte(id), Value: []byte(
			`{"schema":"pipetel.event/v1","kind":"start","task_id":"` + id + `","event_name":"` + name + `","time":"` + ts(old) + `"}`)}})
	}
	// The broker takes at most ~1 MiB per record batch: the 1.5 MB value
	// goes compressed, through a writer whose batch bound admits it.
	w := &kafka.Writer{Addr: kafka.TCP(b.Addrs...), Topic: tt.events, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, Transport: &kafka.Transport{}}
	defer w.Close()
	wBig := &kafka.Writer{Addr: kafka.TCP(b.Addrs...), Topic: tt.events, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, Transport: &kafka.Transport{},
		Compression: kafka.Gzip, BatchBytes: 4 << 20}
	defer wBig.Close()
	must(t, w.WriteMessages(ctx, poisons[0].msg))
	must(t, wBig.WriteMessages(ctx, poisons[1].msg))
	for _, p := range poisons[2:] {
		must(t, w.WriteMessages(ctx, p.msg))
	}

	// The burst: open tasks on partition 0, more than one record may expire
	// (2 000), all due at once, with ids and pipeline ids at their 512-byte
	// bound. Their expiry stays under the changelog's 8 MiB per transaction
	// (about 2.7 KB each): state.Options.MaxChangeBytes is not in app.Config, so
	// the halving of a too-big expiry is left to processor/split_test.go.
	const burst = 5000
	burstIDs := idsByPartition(parts, burst, func(k int) string {
		return fmt.Sprintf("burst-%05d-", k) + strings.Repeat("t", schemas.MaxIDBytes-12)
	})[0]
	pipeline := strings.Repeat("p", schemas.MaxIDBytes)
	clock := &fakeClock{}
	prod := newProducer(t, b, tt, clock)
	for i, id := range burstIDs {
		clock.set(old.Add(time.Duration(i) * time.Microsecond))
		must(t, prod.Logger().StartEvent(ctx, "burst", id, telemetry.WithPipelineID(pipeline)))
	}
	fctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	must(t, prod.Flush(fctx))
	waitFor(t, 60*time.Second, "the poison records dead-lettered and the burst open", func() (bool, string) {
		a.checkRunning(t)
		f := a.scrape(t)
		bad := sumMetric(f, "pipetel_invalid_records_total", nil)
		dead := sumMetric(f, "pipetel_dead_letters_total", nil)
		open := sumMetric(f, "pipetel_open_tasks", nil)
		return bad == float64(len(poisons)) && dead == float64(len(poisons)) && open == burst,
			fmt.Sprintf("invalid %v dead letters %v open %v", bad, dead, open)
	})
	t.Logf("poison records dead-lettered and %d tasks open after %v", burst, time.Since(started).Round(time.Millisecond))

	// 1 000 ordinary tasks on every partition, 2.5 h after the burst: the
	// first of them on partition 0 makes the whole burst due.
	const perPartition = 1000
	ordinary := idsByPartition(parts, perPartition, func(k int) string { return fmt.Sprintf("ord-%05d", k) })
	base := now.Add(-30 * time.Minute)
	dur := func(k int) time.Duration { return time.Duration(k%20) * 10 * time.Millisecond }
	startOf := map[string]time.Time{}
	durOf := map[string]time.Duration{}
	for k := range perPartition {
		for p := range parts {
			id := ordinary[p][k]
			start := base.Add(time.Duration(k*parts+p) * time.Millisecond)
			startOf[id], durOf[id] = start, dur(k)
			clock.set(start)
			must(t, prod.Logger().StartEvent(ctx, "ordinary", id))
			clock.set(start.Add(dur(k)))
			must(t, prod.Logger().EndEvent(ctx, id, nil))
		}
	}
	must(t, prod.Flush(fctx))
	waitFor(t, 90*time.Second, "every ordinary task finished and the burst expired", func() (bool, string) {
		a.checkRunning(t)
		f := a.scrape(t)
		done := sumMetric(f, "events_total", map[string]string{"status": "completed"})
		expired := sumMetric(f, "events_total", map[string]string{"status": "timed_out"})
		open := sumMetric(f, "pipetel_open_tasks", nil)
		// The consumed counter moves after a batch commits, a moment after
		// the state's counters: wait for it too.
		consumed := sumMetric(f, "pipetel_records_consumed_total", nil)
		return done == parts*perPartition && expired == burst && open == 0 && consumed >= float64(len(poisons)+burst+2*parts*perPartition),
			fmt.Sprintf("completed %v timed out %v open %v consumed %v", done, expired, open, consumed)
	})
	t.Logf("every ordinary task finished and the burst expired after %v", time.Since(started).Round(time.Millisecond))

	t.Run("metrics", func(t *testing.T) {
		f := a.scrape(t)
		check := func(name string, labels map[string]string, want float64) {
			t.Helper()
			if got := sumMetric(f, name, labels); got != want {
				t.Errorf("%s%v = %v, want %v", name, labels, got, want)
			}
		}
		for p := range parts {
			pl := strconv.Itoa(p)
			check("events_total", map[string]string{"partition": pl, "status": "completed"}, perPartition)
			wantExpired := 0.0
			if p == 0 {
				wantExpired = burst
			}
			check("events_total", map[string]string{"partition": pl, "status": "timed_out"}, wantExpired)
		}
		check("events_total", nil, parts*perPartition+burst)
		check("pipetel_expired_total", map[string]string{"stream": "events", "status": "timed_out"}, burst)
		check("pipetel_invalid_records_total", map[string]string{"topic": tt.events, "code": "too_long"}, 201)
		check("pipetel_invalid_records_total", map[string]string{"topic": tt.events, "code": "oversized"}, 1)
		check("pipetel_invalid_records_total", nil, float64(len(poisons)))
		check("pipetel_dead_letters_total", nil, float64(len(poisons)))
		check("pipetel_records_consumed_total", nil, float64(len(poisons)+burst+2*parts*perPartition))
		check("pipetel_duplicate_records_total", nil, 0)
		// The 50 KB event names were refused, so none became a series.
		if n := longestLabel(a, t); n > schemas.MaxIDBytes {
			t.Errorf("a label value of %d bytes in /metrics: a refused record's name became a series", n)
		}
	})
	t.Run("tasks", func(t *testing.T) {
		done := eventsWhere(t, a, "status=completed")
		if len(done) != parts*perPartition {
			t.Fatalf("%d completed events, want %d", len(done), parts*perPartition)
		}
		for _, m := range done {
			start, ok := startOf[m.TaskID]
			if !ok || m.StartTime == nil || !m.StartTime.Equal(start) || m.DurationSeconds == nil ||
				*m.DurationSeconds != durOf[m.TaskID].Seconds() || m.EventName != "ordinary" || m.RetryCount != 0 {
				t.Fatalf("completed event not as produced: %s", describe(m))
			}
			delete(startOf, m.TaskID)
		}
		expired := eventsWhere(t, a, "status=timed_out")
		if len(expired) != burst {
			t.Fatalf("%d timed-out events, want %d", len(expired), burst)
		}
		want := map[string]bool{}
		for _, id := range burstIDs {
			want[id] = true
		}
		for _, m := range expired {
			if !want[m.TaskID] || m.PipelineID != pipeline || m.EventName != "burst" || m.EndTime != nil ||
				m.Error != "no end record within 1h0m0s of the start" {
				t.Fatalf("timed-out event not from the burst: %.200s", describe(m))
			}
			delete(want, m.TaskID)
		}
		if pending := eventsWhere(t, a, "status=pending"); len(pending) != 0 {
			t.Fatalf("%d events still pending", len(pending))
		}
	})
	t.Run("dead letters", func(t *testing.T) {
		got := readTopic(t, b, tt.deadLetter, parts, 60*time.Second)
		if len(got) != len(poisons) {
			t.Fatalf("%d dead letters, want %d (one per poison record)", len(got), len(poisons))
		}
		want := map[string]poison{}
		for _, p := range poisons {
			want[string(p.msg.Key)] = p
		}
		for _, m := range got {
			p, ok := want[string(m.Key)]
			if !ok {
				t.Fatalf("dead letter with key %.40q: not a poison record, or dead-lettered twice", m.Key)
			}
			delete(want, string(m.Key))
			h := headers(m)
			if h[processor.HeaderErrorCode] != string(p.code) || h[processor.HeaderSourceTopic] != tt.events ||
				h[processor.HeaderSourcePartition] != strconv.Itoa(partitionOf(m.Key, parts)) || h[processor.HeaderError] == "" {
				t.Errorf("dead letter %.40q: headers %v, want code %s from %s", m.Key, h, p.code, tt.events)
			}
			if len(p.msg.Value) == bigLen {
				if h[processor.HeaderCut] != strconv.Itoa(bigLen) || !bytes.HasPrefix(p.msg.Value, m.Value) ||
					len(m.Value) < bigLen/2 || len(m.Key)+len(m.Value) > 1_000_000 {
					t.Errorf("cut dead letter: %s %q, value of %d bytes (prefix of the original: %v)", processor.HeaderCut, h[processor.HeaderCut],
						len(m.Value), bytes.HasPrefix(p.msg.Value, m.Value))
				}
				continue
			}
			if _, cut := h[processor.HeaderCut]; cut || !bytes.Equal(m.Value, p.msg.Value) {
				t.Errorf("dead letter %.40q: value of %d bytes (cut header %q), want the original %d bytes", m.Key, len(m.Value), h[processor.HeaderCut], len(p.msg.Value))
			}
		}
	})
	a.checkRunning(t)
	must(t, a.stop()) // a clean shutdown, no error
	t.Logf("done after %v", time.Since(started).Round(time.Millisecond))
}
