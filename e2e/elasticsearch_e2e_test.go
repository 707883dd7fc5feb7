package e2e

import (
	"encoding/json"
	"fmt"
	"github.com/pipetel/pipetel/internal/app"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pipetel/pipetel/internal/testbroker"
	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/schemas"
)

// waitDelivered waits until an instance has finished n events and ops
// network operations and its Elasticsearch outbox has delivered them all.
func waitDelivered(t *testing.T, a *runningApp, timeout time.Duration, n, ops int) {
	t.Helper()
	es := map[string]string{"publisher": "elasticsearch"}
	waitFor(t, timeout, "every metric finished and indexed", func() (bool, string) {
		f := a.scrape(t)
		ev := sumMetric(f, "pipetel_finished_total", map[string]string{"stream": "events"})
		nw := sumMetric(f, "pipetel_finished_total", map[string]string{"stream": "network"})
		depth := sumMetric(f, "pipetel_outbox_depth", es)
		sent := sumMetric(f, "pipetel_publish_sent_total", es)
		return ev == float64(n) && nw == float64(ops) && depth == 0 && sent == float64(n+ops),
			fmt.Sprintf("events %v network %v outbox %v sent %v", ev, nw, depth, sent)
	})
}

// checkIndices compares the documents per daily index with the scenario.
func checkIndices(t *testing.T, es esServer, prefix string, s scenario, n int) {
	t.Helper()
	wantEvents, wantOps := s.byDay(0, n)
	var wantNames, gotNames []string
	for family, byDay := range map[string]map[string]int{"events": wantEvents, "network": wantOps} {
		for day, want := range byDay {
			name := prefix + "-" + family + "-" + day
			wantNames = append(wantNames, name)
			if got := es.count(t, name); got != want {
				t.Errorf("%s holds %d documents, want %d", name, got, want)
			}
		}
	}
	st, body := es.do(t, "GET", "/_cat/indices/"+prefix+"-*?h=index&format=json")
	var cat []struct{ Index string }
	if err := json.Unmarshal(body, &cat); st != http.StatusOK || err != nil {
		t.Fatalf("cat indices: %d %s", st, body)
	}
	for _, c := range cat {
		gotNames = append(gotNames, c.Index)
	}
	slices.Sort(wantNames)
	slices.Sort(gotNames)
	if !slices.Equal(gotNames, wantNames) {
		t.Errorf("indices %v, want %v", gotNames, wantNames)
	}
}

// esDoc fetches one document; version is its _version.
func esDoc(t *testing.T, es esServer, index, id string, source any) (version int) {
	t.Helper()
	st, body := es.do(t, "GET", "/"+index+"/_doc/"+url.PathEscape(id))
	var doc struct {
		Version int             `json:"_version"`
		Source  json.RawMessage `json:"_source"`
	}
	if err := json.Unmarshal(body, &doc); st != http.StatusOK || err != nil {
		t.Fatalf("get %s/%s: %d %s", index, id, st, body)
	}
	if err := json.Unmarshal(doc.Source, source); err != nil {
		t.Fatalf("decode %s/%s: %v: %s", index, id, err, doc.Source)
	}
	return doc.Version
}

// TestElasticsearchEndToEnd runs the scenario through an instance whose
// Elasticsearch publisher indexes into the node of PIPETEL_TEST_ELASTICSEARCH,
// then replays the same input through a second instance: deterministic ids
// keep exactly one document per event and operation.
func TestElasticsearchEndToEnd(t *testing.T) {
	es := testElasticsearch(t)
	b := testbroker.Start(t)
	tt := newTestTopics(t, b, 4)
	cfg := testConfig(b, tt, t.TempDir())
	cfg.Sinks.Elasticsearch = es.sink(t)
	prefix := cfg.Sinks.Elasticsearch.IndexPrefix
	a := startApp(t, cfg)
	clock := &fakeClock{}
	p := newProducer(t, b, tt, clock)
	// Half a second before the next UTC midnight: the start times straddle
	// it, so the documents fall into two daily indices, named by the
	// metrics' start time and not by the wall clock.
	midnight := testclock.Now().Truncate(24 * time.Hour).Add(24 * time.Hour)
	s := scenario{prefix: "es", base: midnight.Add(-500 * time.Millisecond)}
	const n = 1000
	s.emit(t, p, clock, 0, n)
	want := s.expect(n)
	waitDelivered(t, a, 90*time.Second, n, want.ops)

	if st, body := es.do(t, "GET", "/_index_template/"+prefix); st != http.StatusOK {
		t.Errorf("index template %s: %d %s", prefix, st, body)
	}
	checkIndices(t, es, prefix, s, n)
	if got := es.count(t, prefix+"-events-*"); got != n {
		t.Errorf("%d event documents, want %d", got, n)
	}
	if got := es.count(t, prefix+"-network-*"); got != want.ops {
		t.Errorf("%d network documents, want %d", got, want.ops)
	}

	day := func(i int) string { return s.start(i).UTC().Format("2006.01.02") }
	var doc struct {
		schemas.EventMetric
		Timestamp  time.Time `json:"@timestamp"`
		MetricType string    `json:"metric_type"`
	}
	// Task 7 started before midnight, task 700 after it.
	for _, i := range []int{7, 700} {
		if v := esDoc(t, es, prefix+"-events-"+day(i), s.taskID(i), &doc); v != 1 {
			t.Errorf("task %d: _version %d, want 1", i, v)
		}
		s.checkEvent(t, i, doc.EventMetric)
		if !doc.Timestamp.Equal(s.start(i).Add(s.duration(i))) || doc.MetricType != "event" {
			t.Errorf("task %d: @timestamp %v metric_type %q, want the end time and \"event\"", i, doc.Timestamp, doc.MetricType)
		}
	}
	if day(7) == day(700) {
		t.Fatalf("tasks 7 and 700 both started on %s: the scenario should straddle midnight", day(7))
	}
	var op struct {
		schemas.NetworkMetric
		MetricType string `json:"metric_type"`
	}
	esDoc(t, es, prefix+"-network-"+day(6), s.taskID(6)+"/q1", &op)
	if m := op.NetworkMetric; m.TaskID != s.taskID(6) || m.OpID != "q1" || m.Host != "db.internal" || m.Port != 5432 ||
		m.Operation != "db_query" || m.BytesSent != 6 || m.BytesReceived != 12 || m.LatencySeconds == nil ||
		*m.LatencySeconds != s.latency(6).Seconds() || m.Status != schemas.StatusCompleted || op.MetricType != "network" {
		t.Errorf("operation of task 6: %s", describe(op))
	}

	// Replay: a second instance in a new group, with a new store, reads the
	// topics from the start and delivers every metric again.
	must(t, a.stop())
	tt2 := tt
	tt2.group = testbroker.Name(t, "replay")
	a2 := startApp(t, testConfigWith(b, tt2, t.TempDir(), func(c *app.Config) { c.Sinks.Elasticsearch = cfg.Sinks.Elasticsearch }))
	waitDelivered(t, a2, 90*time.Second, n, want.ops)
	checkIndices(t, es, prefix, s, n)
	if got := es.count(t, prefix+"-events-*"); got != n {
		t.Errorf("after the replay: %d event documents, want %d", got, n)
	}
	if got := es.count(t, prefix+"-network-*"); got != want.ops {
		t.Errorf("after the replay: %d network documents, want %d", got, want.ops)
	}
	// The second delivery overwrote the first document, unchanged.
	if v := esDoc(t, es, prefix+"-events-"+day(7), s.taskID(7), &doc); v != 2 {
		t.Errorf("task 7 after the replay: _version %d, want 2", v)
	}
	s.checkEvent(t, 7, doc.EventMetric)
}

// testConfigWith is testConfig changed by mod.
func testConfigWith(b *testbroker.Broker, tt testTopics, dir string, mod func(*app.Config)) app.Config {
	cfg := testConfig(b, tt, dir)
	mod(&cfg)
	return cfg
}

// TestElasticsearchOutage stops the Elasticsearch node of
// deploy/local/services in the middle of a run and starts it again: the
// Elasticsearch outbox holds the backlog on disk, the state-backed metrics
// and the query API keep up meanwhile, and after the node's return every
// metric is indexed exactly once.
func TestElasticsearchOutage(t *testing.T) {
	esURL := strings.TrimRight(requireEnv(t, "PIPETEL_TEST_ELASTICSEARCH", "Elasticsearch node"), "/")
	// Only the node that deploy/local/services runs can be stopped here.
	env, err := servicesScript(t, "env")
	if err != nil || !strings.Contains(env, "PIPETEL_TEST_ELASTICSEARCH="+esURL+"\n") {
		msg := fmt.Sprintf("PIPETEL_TEST_ELASTICSEARCH=%s is not the node deploy/local/services runs (%v): cannot stop it", esURL, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	// No other test (of any package) uses the node while it is down.
	lockElasticsearch(t, esURL, true)
	es := esServer{url: esURL}

	b := testbroker.Start(t)
	tt := newTestTopics(t, b, 4)
	cfg := testConfig(b, tt, t.TempDir())
	cfg.Sinks.Elasticsearch = es.sink(t)
	// Retries at most 2 s apart (default 30 s), so that the drain starts
	// soon after the node is back and its time measures the drain itself.
	cfg.Sinks.Delivery.MaxBackoff = 2 * time.Second
	prefix := cfg.Sinks.Elasticsearch.IndexPrefix
	a := startApp(t, cfg)
	clock := &fakeClock{}
	p := newProducer(t, b, tt, clock)
	s := scenario{prefix: "outage", base: testclock.Now().Truncate(time.Hour).Add(2 * time.Hour)}

	// First half with the node up.
	const first, seconds, perSecond = 2000, 30, 400
	const n = first + seconds*perSecond
	s.emit(t, p, clock, 0, first)
	waitDelivered(t, a, 90*time.Second, first, s.expect(first).ops)
	heapBefore := heapInuse()

	down := false
	t.Cleanup(func() {
		if down {
			if _, err := servicesScript(t, "start", "elasticsearch"); err != nil {
				t.Errorf("cannot start Elasticsearch again: %v", err)
			}
		}
	})
	down = true
	outageStarted := time.Now()
	if _, err := servicesScript(t, "stop", "elasticsearch"); err != nil {
		t.Fatal(err)
	}
	if st, _ := es.do(t, "GET", "/"); st != 0 {
		t.Fatalf("Elasticsearch answers %d after services stop", st)
	}

	// Second half while the node is down: perSecond tasks each second.
	esLabel := map[string]string{"publisher": "elasticsearch"}
	var maxDepth float64
	heapPeak := heapBefore
	for sec := range seconds {
		tick := time.Now()
		s.emit(t, p, clock, first+sec*perSecond, first+(sec+1)*perSecond)
		maxDepth = max(maxDepth, sumMetric(a.scrape(t), "pipetel_outbox_depth", esLabel))
		heapPeak = max(heapPeak, heapInuse())
		time.Sleep(time.Until(tick.Add(time.Second))) // pacing, not a wait for a condition
	}
	emitted := time.Since(outageStarted)
	want := s.expect(n)
	secondOps := want.ops - s.expect(first).ops

	// The state-backed metrics and the API reach the full count while the
	// node is still down: Elasticsearch's outage delays nothing else.
	waitFor(t, 90*time.Second, "state-backed metrics of every task while Elasticsearch is down", func() (bool, string) {
		f := a.scrape(t)
		ev, retries := sumMetric(f, "events_total", nil), sumMetric(f, "event_retries_total", nil)
		ops := sumMetric(f, "network_operations_total", nil)
		return ev == n && retries == float64(want.retries) && ops == float64(want.ops),
			fmt.Sprintf("events_total %v event_retries_total %v network_operations_total %v", ev, retries, ops)
	})
	var retries schemas.RetrySummary
	a.getJSON(t, "/api/v1/retries", &retries)
	if retries.TotalRetries != int64(want.retries) || retries.EventsWithRetries != int64(want.withRetries) {
		t.Errorf("API retries %+v during the outage, want total %d with %d", retries, want.retries, want.withRetries)
	}
	if failed := listAll[schemas.EventMetric](t, a, "/api/v1/events?status=failed"); len(failed) != want.failed {
		t.Errorf("API lists %d failed events during the outage, want %d", len(failed), want.failed)
	}
	f := a.scrape(t)
	depth := sumMetric(f, "pipetel_outbox_depth", esLabel)
	retried := sumMetric(f, "pipetel_publish_retried_total", esLabel)
	age := sumMetric(f, "pipetel_outbox_oldest_age_seconds", esLabel)
	if st, _ := es.do(t, "GET", "/"); st != 0 {
		t.Fatalf("Elasticsearch came back (%d) before the test started it: did someone run services up?", st)
	}
	// Everything of the second half waits, nothing more.
	if depth != float64(n-first+secondOps) {
		t.Errorf("elasticsearch outbox depth %v during the outage, want %d (the second half)", depth, n-first+secondOps)
	}
	if retried <= 0 || age <= 0 {
		t.Errorf("during the outage: pipetel_publish_retried_total %v, pipetel_outbox_oldest_age_seconds %v, want both > 0", retried, age)
	}

	restart := time.Now()
	if _, err := servicesScript(t, "start", "elasticsearch"); err != nil {
		t.Fatal(err)
	}
	down = false
	back := time.Now()
	waitDelivered(t, a, 3*time.Minute, n, want.ops)
	drained := time.Since(back)
	heapAfter := heapInuse()
	calls := a.scrape(t)["pipetel_publish_seconds"]
	var publishCalls uint64
	var publishSeconds float64
	for _, m := range calls.GetMetric() {
		publishCalls += m.GetHistogram().GetSampleCount()
		publishSeconds += m.GetHistogram().GetSampleSum()
	}

	if got := es.count(t, prefix+"-events-*"); got != n {
		t.Errorf("%d event documents after the outage, want %d", got, n)
	}
	if got := es.count(t, prefix+"-network-*"); got != want.ops {
		t.Errorf("%d network documents after the outage, want %d", got, want.ops)
	}
	t.Logf("outage: %d tasks (%d records' worth of metrics: %d events, %d operations) emitted in %v while Elasticsearch was down",
		n-first, n-first+secondOps, n-first, secondOps, emitted.Round(time.Millisecond))
	t.Logf("outage: elasticsearch outbox depth %v (max seen while emitting %v), retried %v, oldest %.1fs; node down %v, restart took %v, drained in %v",
		depth, maxDepth, retried, age, back.Sub(outageStarted).Round(time.Millisecond), back.Sub(restart).Round(time.Millisecond), drained.Round(time.Millisecond))
	t.Logf("outage: %d publish calls in all (failed ones included), %.1fs inside them", publishCalls, publishSeconds)
	t.Logf("outage: heap in use %.1f MiB before, %.1f MiB peak during, %.1f MiB after; RSS %s",
		mib(heapBefore), mib(heapPeak), mib(heapAfter), rss())
	// The backlog lives in the store on disk, not on the heap: the bound is
	// the instance, the producer and the test, with room for the race
	// detector's shadow memory, which is not heap.
	const heapBound = 300 << 20
	for what, v := range map[string]uint64{"before": heapBefore, "peak": heapPeak, "after": heapAfter} {
		if v > heapBound {
			t.Errorf("heap in use %s the outage %.1f MiB, want below %.0f MiB", what, mib(v), mib(heapBound))
		}
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// rss is this process' resident set size from /proc, for the log.
func rss() string {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
