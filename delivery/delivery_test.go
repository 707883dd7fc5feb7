package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/sinks"
	"github.com/pipetel/pipetel/state"
)

// scripted is a Publisher whose answers the test sets, one per call.
type scripted struct {
	mu      sync.Mutex
	answers []func(ids []string) error
	calls   [][]string
}

func (s *scripted) Name() string { return "scripted" }

func (s *scripted) next(ids []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, ids)
	if len(s.answers) == 0 {
		return nil
	}
	a := s.answers[0]
	s.answers = s.answers[1:]
	return a(ids)
}

func (s *scripted) PublishEvents(_ context.Context, ms []schemas.EventMetric) error {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.TaskID
	}
	return s.next(ids)
}

func (s *scripted) PublishNetwork(_ context.Context, ms []schemas.NetworkMetric) error {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.TaskID + "/" + m.OpID
	}
	return s.next(ids)
}

// memDead records dead letters.
type memDead struct {
	mu      sync.Mutex
	ids     []string
	reasons []string
}

func (d *memDead) DeadLetter(_ context.Context, _ string, items []state.OutboxItem, reason error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, it := range items {
		d.ids = append(d.ids, itemID(it))
		d.reasons = append(d.reasons, reason.Error())
	}
	return nil
}

// fill queues n finished events in the store's "scripted" outbox.
func fill(t *testing.T, n int) *state.Store {
	t.Helper()
	s, err := state.Open(state.Options{Publishers: []string{"scripted"}, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	u := state.Unit{Stream: state.Events}
	if err := s.Own(u); err != nil {
		t.Fatal(err)
	}
	base := testclock.Now().Add(-time.Hour).Truncate(time.Second)
	err = s.Update(context.Background(), u, func(b *state.Batch) error {
		for i := range n {
			d := 1.0
			start := base.Add(time.Duration(i) * time.Second)
			if err := b.FinishEvent(schemas.EventMetric{TaskID: fmt.Sprintf("t%d", i), EventName: "e", StartTime: &start, DurationSeconds: &d, Status: schemas.StatusCompleted}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDelivery(t *testing.T) {
	reject := func(bad ...string) func([]string) error {
		return func([]string) error {
			var items []sinks.Rejected
			for _, id := range bad {
				items = append(items, sinks.Rejected{ID: id, Status: 400, Reason: "mapper_parsing_exception"})
			}
			return &sinks.RejectedError{Publisher: "scripted", Items: items}
		}
	}
	retryable := func([]string) error { return &sinks.HTTPError{Publisher: "scripted", StatusCode: 503} }
	auth := func([]string) error {
		return fmt.Errorf("%w: %w", sinks.ErrAuth, &sinks.HTTPError{Publisher: "scripted", StatusCode: 401})
	}
	cases := []struct {
		name        string
		answers     []func([]string) error
		wantCalls   int
		wantDead    []string
		wantDepth   int64
		wantSent    float64
		wantRetried float64
	}{
		{name: "all accepted", wantCalls: 1, wantSent: 3},
		{name: "503 then accepted", answers: []func([]string) error{retryable}, wantCalls: 2, wantSent: 3, wantRetried: 3},
		{name: "one rejected for good", answers: []func([]string) error{reject("t1")}, wantCalls: 1, wantDead: []string{"t1"}, wantSent: 2},
		{name: "rejected and retryable", answers: []func([]string) error{func(ids []string) error { return errors.Join(reject("t2")(ids), retryable(ids)) }},
			wantCalls: 2, wantDead: []string{"t2"}, wantSent: 2, wantRetried: 2},
		{name: "whole batch refused for good", answers: []func([]string) error{func([]string) error {
			return fmt.Errorf("%w: %w", sinks.ErrPermanent, &sinks.HTTPError{Publisher: "scripted", StatusCode: 400})
		}}, wantCalls: 1, wantDead: []string{"t0", "t1", "t2"}},
		{name: "authentication failure keeps everything", answers: []func([]string) error{auth, auth}, wantCalls: 3, wantSent: 3, wantRetried: 6},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := fill(t, 3)
			pub := &scripted{answers: tc.answers}
			dead := &memDead{}
			reg := prometheus.NewRegistry()
			d, err := NewDelivery(pub, s, dead, DeliveryConfig{MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- d.Run(ctx) }()
			deadline := time.Now().Add(10 * time.Second)
			for s.OutboxDepth("scripted") != tc.wantDepth {
				if time.Now().After(deadline) {
					t.Fatalf("outbox depth %d, want %d", s.OutboxDepth("scripted"), tc.wantDepth)
				}
				time.Sleep(5 * time.Millisecond)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if len(pub.calls) != tc.wantCalls {
				t.Errorf("%d publish calls %v, want %d", len(pub.calls), pub.calls, tc.wantCalls)
			}
			if fmt.Sprint(dead.ids) != fmt.Sprint(tc.wantDead) {
				t.Errorf("dead letters %v, want %v", dead.ids, tc.wantDead)
			}
			for i, r := range dead.reasons {
				if tc.name == "whole batch refused for good" {
					break
				}
				if want := `scripted: 1 items rejected for good: "` + tc.wantDead[i] + `" (400): mapper_parsing_exception`; r != want {
					t.Errorf("dead-letter reason %q, want %q", r, want)
				}
			}
			sent := testutil.ToFloat64(d.m.sent)
			retried := testutil.ToFloat64(d.m.retried)
			if sent != tc.wantSent || retried != tc.wantRetried {
				t.Errorf("sent %v retried %v, want %v and %v", sent, retried, tc.wantSent, tc.wantRetried)
			}
			if got := testutil.ToFloat64(d.m.deadLettered); got != float64(len(tc.wantDead)) {
				t.Errorf("dead-lettered metric %v, want %d", got, len(tc.wantDead))
			}
		})
	}
}

// TestSetupRetries: a publisher with a Setup (Elasticsearch's index
// template) is set up with backoff until the backend accepts it, and the
// wait ends with the context.
func TestSetupRetries(t *testing.T) {
	var puts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
		w.Header().Set("Content-Type", "application/json")
		if r.Method != http.MethodPut || r.URL.Path != "/_index_template/pipetel-setup" {
			t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
		}
		if puts.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"error":"not yet"}`)
			return
		}
		io.WriteString(w, `{"acknowledged":true}`)
	}))
	defer srv.Close()
	es, err := sinks.NewElasticsearch(sinks.ElasticsearchConfig{Hosts: []string{srv.URL}, IndexPrefix: "pipetel-setup"})
	if err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	dc := DeliveryConfig{MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}
	d, err := NewDelivery(es, fill(t, 0), nil, dc, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if !d.setup(context.Background(), es) {
		t.Fatal("setup gave up")
	}
	if n := puts.Load(); n != 3 {
		t.Errorf("%d template requests, want 3", n)
	}
	if got := strings.Count(logged.String(), "level=WARN msg=\"cannot set up publisher; deliveries wait for it\" publisher=elasticsearch"); got != 2 {
		t.Errorf("%d warnings logged, want 2:\n%s", got, logged.String())
	}

	// A node that never answers: the wait ends with the context, and so
	// does Run, before delivering anything.
	srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if d.setup(ctx, es) {
		t.Fatal("setup succeeded against a closed server")
	}
	if err := d.Run(ctx); err != nil {
		t.Fatal(err)
	}
}
