package instance_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/instance"
	"github.com/pipetel/pipetel/internal/testbroker"
	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/sinks"
	"github.com/pipetel/pipetel/telemetry"
)

// gated is a publisher of the user's whose deliveries wait until the test
// opens its gate (Setup blocks until then), which fails its first call
// with a retryable error, rejects the events named in reject for good, and
// records every call and every metric it accepted.
type gated struct {
	gate   chan struct{}
	reject map[string]bool
	closed atomic.Int32

	mu       sync.Mutex
	calls    []string // "events 20: unavailable", "network 3: ok", …
	events   map[string][]schemas.EventMetric
	network  map[string][]schemas.NetworkMetric
	failNext bool
}

func newGated(failFirst bool, reject ...string) *gated {
	g := &gated{gate: make(chan struct{}), reject: map[string]bool{}, failNext: failFirst,
		events: map[string][]schemas.EventMetric{}, network: map[string][]schemas.NetworkMetric{}}
	for _, id := range reject {
		g.reject[id] = true
	}
	return g
}

var errUnavailable = errors.New("unavailable")

func (g *gated) Name() string { return "gated" }

func (g *gated) Setup(ctx context.Context) error {
	select {
	case <-g.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gated) Close() error { g.closed.Add(1); return nil }

func (g *gated) PublishEvents(_ context.Context, ms []schemas.EventMetric) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.failNext {
		g.failNext = false
		g.calls = append(g.calls, fmt.Sprintf("events %d: unavailable", len(ms)))
		return errUnavailable
	}
	rej := &sinks.RejectedError{Publisher: g.Name()}
	for _, m := range ms {
		if g.reject[m.TaskID] {
			rej.Items = append(rej.Items, sinks.Rejected{ID: m.TaskID, Reason: "no such pipeline"})
			continue
		}
		g.events[m.TaskID] = append(g.events[m.TaskID], m)
	}
	g.calls = append(g.calls, fmt.Sprintf("events %d: %d rejected", len(ms), len(rej.Items)))
	if len(rej.Items) > 0 {
		return rej
	}
	return nil
}

func (g *gated) PublishNetwork(_ context.Context, ms []schemas.NetworkMetric) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, m := range ms {
		g.network[m.TaskID+"/"+m.OpID] = append(g.network[m.TaskID+"/"+m.OpID], m)
	}
	g.calls = append(g.calls, fmt.Sprintf("network %d: ok", len(ms)))
	return nil
}

func (g *gated) accepted() (events, network int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.events), len(g.network)
}

// lockedLog is a log destination the test reads while the instance writes.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type topics struct{ events, network, dead, group string }

// start runs an instance with pub on broker b until the test ends; it
// returns the instance and a func that stops it and returns Run's error.
func start(t *testing.T, b *testbroker.Broker, tp topics, maxOutbox int64, log *lockedLog, pub sinks.Publisher) (*instance.Instance, func() error) {
	t.Helper()
	var cfg instance.Config
	cfg.Processor.Brokers = b.Addrs
	cfg.Processor.GroupID = tp.group
	cfg.Processor.EventsTopic, cfg.Processor.NetworkTopic, cfg.Processor.DeadLetterTopic = tp.events, tp.network, tp.dead
	cfg.Processor.SessionTimeout = 3 * time.Second
	cfg.Processor.HeartbeatInterval = 300 * time.Millisecond
	cfg.Processor.RebalanceTimeout = 3 * time.Second
	cfg.Processor.MaxOutboxDepth = maxOutbox
	cfg.Processor.Now = testclock.Now
	cfg.State.Dir = t.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.Sinks.Delivery.MinBackoff = 20 * time.Millisecond
	cfg.Sinks.Delivery.MaxBackoff = 100 * time.Millisecond
	inst, err := instance.New(cfg, instance.WithPublisher(pub), instance.WithLogger(slog.New(slog.NewTextHandler(log, nil))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- inst.Run(ctx) }()
	var once sync.Once
	var result error
	stop := func() error {
		once.Do(func() { cancel(); result = <-done })
		return result
	}
	t.Cleanup(func() { stop() })
	select {
	case <-inst.Ready():
	case err := <-done:
		t.Fatalf("instance stopped before joining its group: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("instance did not join its group within 60s")
	}
	return inst, stop
}

func newTopics(t *testing.T, b *testbroker.Broker) topics {
	tp := topics{testbroker.Name(t, "events"), testbroker.Name(t, "network"), testbroker.Name(t, "dead"), testbroker.Name(t, "group")}
	b.CreateTopics(t, 2, tp.events, tp.network)
	b.CreateTopics(t, 1, tp.dead)
	return tp
}

// scrape returns the value of name's series whose labels include want,
// summed, from the instance's /metrics.
func scrape(t *testing.T, inst *instance.Instance, name string, want map[string]string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + inst.Addr() + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("cannot parse /metrics: %v", err)
	}
	var sum float64
	for _, m := range fams[name].GetMetric() {
		n := 0
		for _, l := range m.GetLabel() {
			if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
				n++
			}
		}
		if n == len(want) {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last: %s", timeout, what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOwnPublisher runs an instance with a publisher of the user's and
// checks that it gets exactly the finished metrics, with the fields the
// producer set, each accepted once; that a retryable error it returns sends
// the same batch again after a backoff; that what it rejects for good goes
// to the dead-letter topic with its name and reason; that its metrics are on
// /metrics with its name; and that it is closed once at stop.
func TestOwnPublisher(t *testing.T) {
	b := testbroker.Start(t)
	tp := newTopics(t, b)
	pub := newGated(true, "task-reject")
	var log lockedLog
	inst, stop := start(t, b, tp, 0, &log, pub)

	var clock atomic.Int64
	base := testclock.Now().Truncate(time.Millisecond)
	at := func(d time.Duration) { clock.Store(base.Add(d).UnixNano()) }
	producer, err := telemetry.NewProducer(b.Addrs, telemetry.WithEventsTopic(tp.events), telemetry.WithNetworkTopic(tp.network),
		telemetry.WithClock(func() time.Time { return time.Unix(0, clock.Load()).UTC() }))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	logger, network := producer.Logger(), producer.Network()
	type want struct {
		status  schemas.Status
		err     string
		retries int
	}
	wantEvents := map[string]want{}
	for i := range 20 {
		id, w := fmt.Sprintf("task-%02d", i), want{status: schemas.StatusCompleted}
		if i == 19 {
			id = "task-reject"
		}
		at(time.Duration(i) * time.Second)
		err := logger.StartEvent(ctx, "Transform", id, telemetry.WithPipelineID("etl"))
		if i%5 == 1 {
			w.retries = 2 // at two record times: a retry at a time already counted is a duplicate
			for _, d := range []time.Duration{500 * time.Millisecond, 700 * time.Millisecond} {
				at(time.Duration(i)*time.Second + d)
				err = errors.Join(err, logger.RecordRetry(ctx, id))
			}
		}
		var failure error
		if i%4 == 2 {
			w.status, w.err, failure = schemas.StatusFailed, fmt.Sprintf("bad row %d", i), fmt.Errorf("bad row %d", i)
		}
		at(time.Duration(i)*time.Second + 1500*time.Millisecond)
		if err := errors.Join(err, logger.EndEvent(ctx, id, failure)); err != nil {
			t.Fatal(err)
		}
		if id != "task-reject" {
			wantEvents[id] = w
		}
	}
	for i := range 3 {
		op := telemetry.WithOpID(fmt.Sprintf("op-%d", i))
		at(0)
		err := network.StartOperation(ctx, "task-00", "db.internal", 5432, op, telemetry.WithOperation("query"))
		at(250 * time.Millisecond)
		if err := errors.Join(err, network.EndOperation(ctx, "task-00", 10, 20, nil, op)); err != nil {
			t.Fatal(err)
		}
	}
	if err := producer.Close(ctx); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"publisher": "gated"}
	// The gate holds the deliveries until all 23 metrics are in the outbox,
	// so the first read takes them all and the calls below are exact.
	waitFor(t, 30*time.Second, "23 metrics in the outbox", func() (bool, string) {
		d := scrape(t, inst, "pipetel_outbox_depth", labels)
		return d == 23, fmt.Sprintf("depth %v", d)
	})
	close(pub.gate)
	waitFor(t, 30*time.Second, "the outbox delivered", func() (bool, string) {
		ev, nw := pub.accepted()
		dead := scrape(t, inst, "pipetel_publish_dead_lettered_total", labels)
		return ev == 19 && nw == 3 && dead == 1, fmt.Sprintf("%d events, %d operations accepted, %v dead-lettered", ev, nw, dead)
	})
	for name, want := range map[string]float64{
		"pipetel_outbox_depth": 0, "pipetel_publish_sent_total": 22, "pipetel_publish_dead_lettered_total": 1,
		"pipetel_publish_retried_total": 23, // the first read, all of it
		"pipetel_publish_failed_total":  40, // the events of the failed call and of the call with the reject
	} {
		if got := scrape(t, inst, name, labels); got != want {
			t.Errorf("%s{publisher=\"gated\"} = %v, want %v", name, got, want)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	pub.mu.Lock()
	defer pub.mu.Unlock()
	if want := []string{"events 20: unavailable", "events 20: 1 rejected", "network 3: ok"}; !slices.Equal(pub.calls, want) {
		t.Errorf("publish calls %q, want %q", pub.calls, want)
	}
	if n := strings.Count(log.String(), `msg="cannot publish; will retry" publisher=gated items=23 `); n != 1 {
		t.Errorf("%d retry warnings for 23 items, want 1; log:\n%s", n, log.String())
	}
	if len(pub.events) != len(wantEvents) {
		t.Errorf("%d events accepted, want %d", len(pub.events), len(wantEvents))
	}
	for id, w := range wantEvents {
		ms := pub.events[id]
		if len(ms) != 1 {
			t.Errorf("%s accepted %d times, want once", id, len(ms))
			continue
		}
		m := ms[0]
		if m.Status != w.status || m.Error != w.err || m.RetryCount != w.retries || m.EventName != "Transform" || m.PipelineID != "etl" ||
			m.DurationSeconds == nil || *m.DurationSeconds != 1.5 {
			t.Errorf("%s: got %+v, want status %s, error %q, %d retries, 1.5 s", id, m, w.status, w.err, w.retries)
		}
	}
	for i := range 3 {
		key := fmt.Sprintf("task-00/op-%d", i)
		ms := pub.network[key]
		if len(ms) != 1 || ms[0].Host != "db.internal" || ms[0].Port != 5432 || ms[0].Operation != "query" || ms[0].BytesReceived != 20 ||
			ms[0].LatencySeconds == nil || *ms[0].LatencySeconds != 0.25 || ms[0].Status != schemas.StatusCompleted {
			t.Errorf("%s: accepted %+v, want once, 0.25 s", key, ms)
		}
	}
	if n := pub.closed.Load(); n != 1 {
		t.Errorf("closed %d times, want once", n)
	}

	// The one dead letter: the rejected metric, its reason and publisher.
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: b.Addrs, Topic: tp.dead, Partition: 0, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	m, err := r.ReadMessage(rctx)
	if err != nil {
		t.Fatalf("cannot read the dead-letter topic: %v", err)
	}
	hdr := map[string]string{}
	for _, h := range m.Headers {
		hdr[h.Key] = string(h.Value)
	}
	if string(m.Key) != "task-reject" || hdr["pipetel-publisher"] != "gated" || hdr["pipetel-metric-type"] != "event" ||
		hdr["pipetel-error"] != `gated: 1 items rejected for good: "task-reject": no such pipeline` {
		t.Errorf("dead letter key %q, headers %v", m.Key, hdr)
	}
	if lag, err := r.ReadLag(rctx); err != nil || lag != 0 {
		t.Errorf("dead-letter topic: %d records after the one expected (%v)", lag, err)
	}
}

// TestOwnPublisherBackpressure: a publisher of the user's that does not
// keep up pauses the processor's fetches once its outbox is deeper than
// processor.max_outbox_depth, and they resume when it drains; every metric
// arrives once.
func TestOwnPublisherBackpressure(t *testing.T) {
	b := testbroker.Start(t)
	tp := newTopics(t, b)
	pub := newGated(false)
	var log lockedLog
	inst, _ := start(t, b, tp, 5, &log, pub)
	producer, err := telemetry.NewProducer(b.Addrs, telemetry.WithEventsTopic(tp.events), telemetry.WithNetworkTopic(tp.network))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	emit := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			id := fmt.Sprintf("task-%02d", i)
			if err := errors.Join(producer.Logger().StartEvent(ctx, "Load", id), producer.Logger().EndEvent(ctx, id, nil)); err != nil {
				t.Fatal(err)
			}
		}
		if err := producer.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	emit(0, 10)
	waitFor(t, 30*time.Second, "fetching paused by the publisher's outbox", func() (bool, string) {
		paused, depth := scrape(t, inst, "pipetel_fetch_paused", nil), scrape(t, inst, "pipetel_outbox_depth", map[string]string{"publisher": "gated"})
		return paused == 1 && depth == 10, fmt.Sprintf("paused %v, depth %v", paused, depth)
	})
	emit(10, 20)
	close(pub.gate)
	waitFor(t, 30*time.Second, "all 20 delivered and fetching resumed", func() (bool, string) {
		ev, _ := pub.accepted()
		paused := scrape(t, inst, "pipetel_fetch_paused", nil)
		return ev == 20 && paused == 0, fmt.Sprintf("%d accepted, paused %v", ev, paused)
	})
	if err := producer.Close(ctx); err != nil {
		t.Fatal(err)
	}
	pub.mu.Lock()
	defer pub.mu.Unlock()
	for id, ms := range pub.events {
		if len(ms) != 1 {
			t.Errorf("%s accepted %d times, want once", id, len(ms))
		}
	}
}
