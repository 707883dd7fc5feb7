package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/internal/testbroker"
	"github.com/pipetel/pipetel/schemas"
)

// skipUnlessHeavy gates the tests that run several pipetel processes for
// minutes.
func skipUnlessHeavy(t *testing.T) {
	t.Helper()
	if os.Getenv("PIPETEL_TEST_HEAVY") == "" {
		t.Skip("heavy fault tests: set PIPETEL_TEST_HEAVY=1 (make test does, without -race)")
	}
}

// fleet is the pipetel processes of one fault test, in one consumer group.
type fleet struct {
	t          *testing.T
	b          *testbroker.Broker
	tt         testTopics
	partitions int
	inst       []*instance
	// es and esPrefix are set when the instances index into
	// Elasticsearch.
	es       *esServer
	esPrefix string
}

// newFleet starts n instances on topics of the given partitions, each
// with its own state directory and address, and waits until they share the
// partitions.
func newFleet(t *testing.T, n, partitions int) *fleet {
	t.Helper()
	f := &fleet{t: t, b: testbroker.Start(t), partitions: partitions}
	f.tt = newTestTopics(t, f.b, partitions)
	bin := buildPipetel(t)
	if os.Getenv("PIPETEL_TEST_ELASTICSEARCH") != "" {
		// Shared lock on the node (no outage test stops it meanwhile) and
		// a unique index prefix, deleted when the test ends.
		es := testElasticsearch(t)
		sink := es.sink(t)
		f.es, f.esPrefix = &es, sink.IndexPrefix
	} else {
		t.Log("PIPETEL_TEST_ELASTICSEARCH is not set: the Elasticsearch sink is not part of this run")
	}
	for i := range n {
		f.inst = append(f.inst, newInstance(t, bin, fmt.Sprintf("pipetel-%d", i), instanceConfig{
			brokers: f.b.Addrs, topics: f.tt, stateDir: filepath.Join(t.TempDir(), "state"),
			listen: freeAddr(t), es: f.es, esPrefix: f.esPrefix,
		}))
	}
	for _, in := range f.inst {
		in.start()
	}
	for _, in := range f.inst {
		in.waitUp(90 * time.Second)
	}
	f.waitBalanced(90 * time.Second)
	return f
}

// live lists the instances whose process runs.
func (f *fleet) live() []*instance {
	var out []*instance
	for _, in := range f.inst {
		if in.running() {
			out = append(out, in)
		}
	}
	return out
}

// waitBalanced waits until every live instance owns partitions and
// together they own every partition of both input topics once; it returns
// how long that took.
func (f *fleet) waitBalanced(timeout time.Duration) time.Duration {
	f.t.Helper()
	started := time.Now()
	waitFor(f.t, timeout, "the live instances to share every partition", func() (bool, string) {
		var sum float64
		var each []string
		ok := true
		for _, in := range f.live() {
			n := in.assigned()
			ok = ok && n > 0
			sum += n
			each = append(each, fmt.Sprintf("%s:%v", in.name, n))
		}
		return ok && sum == float64(2*f.partitions), strings.Join(each, " ")
	})
	return time.Since(started)
}

// waitProgress waits until the load acknowledged frac of its tasks. The
// load's result is read from res only on failure.
func waitProgress(t *testing.T, l *steadyLoad, res <-chan error, frac float64) {
	t.Helper()
	waitFor(t, 3*time.Minute, fmt.Sprintf("the load to reach %.0f%%", 100*frac), func() (bool, string) {
		select {
		case err := <-res:
			if err != nil {
				t.Fatalf("load failed: %v", err)
			}
			t.Fatalf("load ended before %.0f%%", 100*frac)
		default:
		}
		return l.progress() >= frac, fmt.Sprintf("%.1f%%", 100*l.progress())
	})
}

// totals are the finished-metric series summed over the live instances.
type totals struct {
	Completed, Failed, Retries, Durations, Ops, OpsFailed, Assigned float64
}

func (f *fleet) totals() (totals, error) {
	var tot totals
	for _, in := range f.live() {
		fams, err := in.metrics()
		if err != nil {
			return tot, err
		}
		tot.Completed += sumMetric(fams, "events_total", map[string]string{"status": "completed"})
		tot.Failed += sumMetric(fams, "events_total", map[string]string{"status": "failed"})
		tot.Retries += sumMetric(fams, "event_retries_total", nil)
		tot.Durations += sumMetric(fams, "event_duration_seconds", nil)
		tot.Ops += sumMetric(fams, "network_operations_total", nil)
		tot.OpsFailed += sumMetric(fams, "network_operations_total", map[string]string{"status": "failed"})
		tot.Assigned += sumMetric(fams, "pipetel_assigned_partitions", nil)
	}
	return tot, nil
}

// listEvents pages through every event of the group from one instance.
func listEvents(in *instance) ([]schemas.EventMetric, error) {
	var all []schemas.EventMetric
	cursor := ""
	for range 100000 {
		path := "/api/v1/events?limit=1000"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		code, body, err := in.get(path)
		if err != nil {
			return nil, err
		}
		if code != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %d %s", path, code, body)
		}
		var page schemas.Page[schemas.EventMetric]
		if err := json.Unmarshal(body, &page); err != nil {
			return nil, fmt.Errorf("GET %s: %v", path, err)
		}
		all = append(all, page.Items...)
		if page.Next == "" {
			return all, nil
		}
		cursor = page.Next
	}
	return nil, fmt.Errorf("paging through /api/v1/events does not end")
}

// checkDrained waits until the group reports exactly the scenario's n
// tasks: on /metrics summed over the live instances, through one
// instance's query API, and in Elasticsearch when it is configured.
func (f *fleet) checkDrained(s scenario, n int, timeout time.Duration) time.Duration {
	t := f.t
	t.Helper()
	e := s.expect(n)
	want := totals{Completed: float64(e.completed), Failed: float64(e.failed), Retries: float64(e.retries),
		Durations: float64(n), Ops: float64(e.ops), OpsFailed: float64(e.opsFailed), Assigned: float64(2 * f.partitions)}
	started := time.Now()
	for deadline := time.Now().Add(timeout); ; {
		got, err := f.totals()
		if err == nil && got == want {
			break
		}
		if time.Now().After(deadline) {
			f.diagnose(s, n)
			t.Fatalf("timed out after %v waiting for exact totals on /metrics of the live instances: got %+v (%v), want %+v", timeout, got, err, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
	exact := time.Since(started)
	t.Logf("metrics exact %v after the load ended", exact.Round(100*time.Millisecond))

	// The query API of one instance lists every task once, finished as the
	// scenario says. A listing under a rebalance gets 409 or 503: list again.
	var events []schemas.EventMetric
	waitFor(t, timeout, "a complete listing of /api/v1/events", func() (bool, string) {
		var err error
		events, err = listEvents(f.live()[0])
		if err != nil {
			return false, err.Error()
		}
		return len(events) == n, fmt.Sprintf("%d events listed, want %d", len(events), n)
	})
	seen := make([]int, n)
	failed := 0
	for _, m := range events {
		i, err := strconv.Atoi(m.TaskID[strings.LastIndexByte(m.TaskID, '-')+1:])
		if err != nil || i < 0 || i >= n || s.taskID(i) != m.TaskID {
			t.Errorf("listed an unknown task %q", m.TaskID)
			continue
		}
		seen[i]++
		s.checkEvent(t, i, m)
		if m.Status == schemas.StatusFailed {
			failed++
		}
	}
	for i, c := range seen {
		if c != 1 {
			t.Errorf("task %s listed %d times, want once", s.taskID(i), c)
		}
	}
	if failed != e.failed {
		t.Errorf("%d failed events listed, want %d", failed, e.failed)
	}
	wantRetries, _ := json.Marshal(schemas.RetrySummary{TotalRetries: int64(e.retries), EventsWithRetries: int64(e.withRetries),
		MaxRetries: int64(e.maxRetries), EventsByRetryCount: e.byRetryCount})
	if code, body, err := f.live()[0].get("/api/v1/retries"); err != nil || code != 200 || string(body) != string(wantRetries)+"\n" {
		t.Errorf("GET /api/v1/retries: %d %s %v, want %s", code, body, err, wantRetries)
	}

	if f.es != nil {
		started := time.Now()
		waitFor(t, timeout, "every finished metric indexed in Elasticsearch", func() (bool, string) {
			ev, nw := f.es.count(t, f.esPrefix+"-events-*"), f.es.count(t, f.esPrefix+"-network-*")
			return ev == n && nw == e.ops, fmt.Sprintf("events %d, network %d; want %d and %d", ev, nw, n, e.ops)
		})
		t.Logf("Elasticsearch holds exactly %d event and %d network documents (%v after the metrics were exact)",
			n, e.ops, time.Since(started).Round(100*time.Millisecond))
	}

	// Exact once reached means exact for good: nothing applied twice.
	if got, err := f.totals(); err != nil || got != want {
		t.Errorf("after the checks: totals %+v (%v), want %+v", got, err, want)
	}
	return exact
}

// diagnose logs what each live instance holds of the tasks that are not
// finished as expected: missing from every instance, pending, or finished
// with another status, with the partition the task's records went to.
func (f *fleet) diagnose(s scenario, n int) {
	t := f.t
	t.Helper()
	status := map[string][]string{}
	for _, in := range f.live() {
		var pieces []string
		for _, path := range []string{"/api/v1/events?scope=local&status=pending&limit=1000", "/api/v1/retries?scope=local"} {
			code, body, err := in.get(path)
			pieces = append(pieces, fmt.Sprintf("GET %s: %d %v %.2000s", path, code, err, body))
		}
		t.Logf("%s (%s):\n%s", in.name, in.addr, strings.Join(pieces, "\n"))
	}
	events, err := listEvents(f.live()[0])
	if err != nil {
		t.Logf("cannot list the events: %v", err)
		return
	}
	byID := map[string]schemas.EventMetric{}
	for _, m := range events {
		byID[m.TaskID] = m
	}
	missing := 0
	for i := range n {
		id := s.taskID(i)
		part := kafka.Murmur2Balancer{}.Balance(kafka.Message{Key: []byte(id)}, f.partitionList()...)
		m, ok := byID[id]
		switch {
		case !ok:
			missing++
			status["missing"] = append(status["missing"], fmt.Sprintf("%s(p%d)", id, part))
		case m.Status == schemas.StatusPending || (m.Status == schemas.StatusFailed) != s.failed(i):
			status[string(m.Status)] = append(status[string(m.Status)], fmt.Sprintf("%s(p%d,retries %d,start %v,end %v)", id, part, m.RetryCount, m.StartTime != nil, m.EndTime != nil))
		}
	}
	for st, ids := range status {
		t.Logf("%d tasks %s: %s", len(ids), st, strings.Join(ids[:min(len(ids), 80)], " "))
	}
}

// partitionList is 0..partitions-1.
func (f *fleet) partitionList() []int {
	ps := make([]int, f.partitions)
	for i := range ps {
		ps[i] = i
	}
	return ps
}

// TestFaultKillRestart kills one instance of three with SIGKILL in the
// middle of a steady load, three times, restarts each on its own state
// directory, then restarts all three in turn with SIGTERM; afterwards every
// task is counted exactly once across the group.
func TestFaultKillRestart(t *testing.T) {
	skipUnlessHeavy(t)
	const n = 6000
	f := newFleet(t, 3, 6)
	s := scenario{prefix: "kill", base: time.Now().UTC().Truncate(time.Millisecond)}
	load := newSteadyLoad(t, f.b, f.tt, s, n, 40*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	loadStarted := time.Now()
	res := load.start(ctx)

	var figures []string
	for k, victim := range f.inst {
		waitProgress(t, load, res, 0.1+0.2*float64(k))
		at := load.progress()
		victim.kill()
		t.Logf("kill -9 %s at %.0f%% of the load", victim.name, 100*at)
		if k == 1 {
			// This time the survivors take over before it comes back.
			took := f.waitBalanced(90 * time.Second)
			t.Logf("takeover of %s's partitions by the survivors: %v", victim.name, took.Round(100*time.Millisecond))
			figures = append(figures, fmt.Sprintf("survivors took over in %v", took.Round(100*time.Millisecond)))
		}
		victim.start()
		up := victim.waitUp(90 * time.Second)
		balanced := f.waitBalanced(90 * time.Second)
		t.Logf("%s back on its state dir: owns partitions after %v, group balanced %v later",
			victim.name, up.Round(100*time.Millisecond), balanced.Round(100*time.Millisecond))
		figures = append(figures, fmt.Sprintf("killed instance back %v", up.Round(100*time.Millisecond)))
	}
	for _, in := range f.inst {
		at := load.progress()
		drain := in.terminate(60 * time.Second)
		in.start()
		up := in.waitUp(90 * time.Second)
		balanced := f.waitBalanced(90 * time.Second)
		t.Logf("rolling restart of %s at %.0f%%: drained in %v, owns partitions after %v, balanced %v later",
			in.name, 100*at, drain.Round(100*time.Millisecond), up.Round(100*time.Millisecond), balanced.Round(100*time.Millisecond))
		figures = append(figures, fmt.Sprintf("SIGTERM drain %v, back %v", drain.Round(100*time.Millisecond), up.Round(100*time.Millisecond)))
	}
	if err := <-res; err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Logf("load of %d tasks took %v; %d records undelivered at first, %d task phases sent again",
		n, time.Since(loadStarted).Round(100*time.Millisecond), load.errored.Load(), load.resent.Load())
	drained := f.checkDrained(s, n, 2*time.Minute)
	for _, in := range f.inst {
		t.Logf("%s's warnings and errors:%s", in.name, in.problems())
	}
	report(t, fmt.Sprintf("TestFaultKillRestart (%s broker): %d tasks exact after 3 kill -9 and a rolling restart of 3 instances; %s; exact %v after the load",
		f.b.Kind, n, strings.Join(figures, "; "), drained.Round(100*time.Millisecond)))
}

// report logs line and adds it to make test's report (testbroker.Report).
func report(t *testing.T, line string) {
	t.Helper()
	t.Log(line)
	if !t.Failed() {
		testbroker.Report(line)
	}
}

// requireManagedKafka skips t unless PIPETEL_TEST_KAFKA is the broker that
// deploy/local/services manages (same state dir and port offset in the
// environment), which the test is about to stop and start.
func requireManagedKafka(t *testing.T) {
	t.Helper()
	addr := os.Getenv(testbroker.EnvKafka)
	if addr == "" {
		t.Skipf("needs the real Kafka broker of deploy/local/services to stop and start it: %s is not set (make test sets it)", testbroker.EnvKafka)
	}
	env, err := servicesScript(t, "env")
	must(t, err)
	if !strings.Contains(env, "export "+testbroker.EnvKafka+"="+addr+"\n") {
		t.Skipf("%s=%s is not the Kafka broker that deploy/local/services manages; its env says:\n%s", testbroker.EnvKafka, addr, env)
	}
}

// services runs deploy/local/services with args and fails t if it fails.
func services(t *testing.T, args ...string) {
	t.Helper()
	started := time.Now()
	if _, err := servicesScript(t, args...); err != nil {
		t.Fatal(err)
	}
	t.Logf("services %s took %v", strings.Join(args, " "), time.Since(started).Round(100*time.Millisecond))
}

// TestFaultBrokerRestart stops the Kafka broker for about ten seconds in
// the middle of a steady load; afterwards every task is counted exactly
// once across the group.
func TestFaultBrokerRestart(t *testing.T) {
	skipUnlessHeavy(t)
	requireManagedKafka(t)
	const n = 6000
	f := newFleet(t, 3, 6)
	s := scenario{prefix: "brk", base: time.Now().UTC().Truncate(time.Millisecond)}
	load := newSteadyLoad(t, f.b, f.tt, s, n, 40*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	loadStarted := time.Now()
	res := load.start(ctx)

	waitProgress(t, load, res, 0.25)
	stopped := true
	t.Cleanup(func() {
		// The broker is shared with the rest of the suite: bring it back
		// whatever happened.
		if stopped {
			if _, err := servicesScript(t, "start", "kafka"); err != nil {
				t.Errorf("in cleanup: %v", err)
			}
		}
	})
	at := load.progress()
	services(t, "stop", "kafka")
	down := time.Now()
	t.Logf("Kafka stopped at %.0f%% of the load", 100*at)
	pause(ctx, 10*time.Second)
	services(t, "start", "kafka")
	stopped = false
	outage := time.Since(down)
	t.Logf("Kafka was down %v", outage.Round(100*time.Millisecond))

	if err := <-res; err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Logf("load of %d tasks took %v; %d records undelivered at first, %d task phases sent again",
		n, time.Since(loadStarted).Round(100*time.Millisecond), load.errored.Load(), load.resent.Load())
	for _, in := range f.inst {
		if !in.running() {
			t.Fatalf("%s exited during the broker outage; log:\n%s", in.name, in.logTail(40))
		}
	}
	drained := f.checkDrained(s, n, 2*time.Minute)
	for _, in := range f.inst {
		t.Logf("%s's warnings and errors:%s", in.name, in.problems())
	}
	report(t, fmt.Sprintf("TestFaultBrokerRestart (%s broker): %d tasks exact after a %v Kafka outage at %.0f%% of the load; %d records re-sent by the producer; exact %v after the load",
		f.b.Kind, n, outage.Round(100*time.Millisecond), 100*at, load.errored.Load(), drained.Round(100*time.Millisecond)))
}

// TestFaultStaleOwner freezes one instance of two (SIGSTOP) in the middle
// of a steady load until the other owns every partition, then lets it go
// on (SIGCONT): it resumes in the middle of whatever it was doing, a state
// transaction and its changelog append included, as an instance paused by
// a long GC or a frozen VM would. Afterwards every task is counted exactly
// once: whatever it appended late was fenced.
func TestFaultStaleOwner(t *testing.T) {
	skipUnlessHeavy(t)
	const n = 6000
	f := newFleet(t, 2, 4)
	s := scenario{prefix: "stale", base: time.Now().UTC().Truncate(time.Millisecond)}
	load := newSteadyLoad(t, f.b, f.tt, s, n, 30*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	res := load.start(ctx)
	waitProgress(t, load, res, 0.3)
	frozen, other := f.inst[0], f.inst[1]
	must(t, syscall.Kill(frozen.pid(), syscall.SIGSTOP))
	stopped := time.Now()
	t.Cleanup(func() { syscall.Kill(frozen.pid(), syscall.SIGCONT) })
	waitFor(t, 60*time.Second, "the other instance to own every partition", func() (bool, string) {
		n := other.assigned()
		return n == float64(2*f.partitions), fmt.Sprintf("%v partitions", n)
	})
	takeover := time.Since(stopped)
	waitProgress(t, load, res, 0.5)
	must(t, syscall.Kill(frozen.pid(), syscall.SIGCONT))
	t.Logf("%s frozen for %v; the other took over after %v", frozen.name, time.Since(stopped).Round(100*time.Millisecond), takeover.Round(100*time.Millisecond))
	if err := <-res; err != nil {
		t.Fatalf("load: %v", err)
	}
	if !frozen.running() {
		t.Fatalf("%s exited after it was let go; log:\n%s", frozen.name, frozen.logTail(30))
	}
	f.waitBalanced(90 * time.Second)
	drained := f.checkDrained(s, n, 2*time.Minute)
	fenced := len(frozen.logLines("another instance owns it now"))
	superseded := len(other.logLines("records of a stale owner")) + len(frozen.logLines("records of a stale owner"))
	report(t, fmt.Sprintf("TestFaultStaleOwner (%s broker): %d tasks exact after one of two instances was frozen for the other to take over (%v) and let go; %d of its partitions found themselves fenced, %d stale appends superseded; exact %v after the load",
		f.b.Kind, n, takeover.Round(100*time.Millisecond), fenced, superseded, drained.Round(100*time.Millisecond)))
}
