package e2e

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipetel/pipetel/internal/testbroker"
	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/telemetry"
)

// steadyLoad emits the tasks [0, n) of a scenario at a steady pace, in
// chunks, while a test breaks things. Each chunk goes in two phases: first
// every record that opens a task (start or early end, the retries, the
// network start), then, once the cluster acknowledged all of them, the
// records that close it. A task can therefore never finish before its
// retries are in Kafka, so a retry is never late and the expected retry
// counts hold whatever fails. Records the SDK reports as undelivered are
// sent again with their whole phase of the task: the join is idempotent.
type steadyLoad struct {
	s      scenario
	n      int
	chunk  int
	every  time.Duration // between the starts of two chunks
	clock  *fakeClock
	p      *telemetry.Producer
	failMu sync.Mutex
	failed map[int]bool // task indexes with an undelivered record

	done    atomic.Int64 // tasks whose both phases were acknowledged
	resent  atomic.Int64 // task phases sent again
	errored atomic.Int64 // records the SDK reported undelivered
}

// newSteadyLoad spreads n tasks over about d.
func newSteadyLoad(t *testing.T, b *testbroker.Broker, tt testTopics, s scenario, n int, d time.Duration) *steadyLoad {
	t.Helper()
	l := &steadyLoad{s: s, n: n, chunk: 50, clock: &fakeClock{}, failed: map[int]bool{}}
	l.every = d * time.Duration(l.chunk) / time.Duration(n)
	p, err := telemetry.NewProducer(b.Addrs, telemetry.WithEventsTopic(tt.events), telemetry.WithNetworkTopic(tt.network),
		telemetry.WithClock(l.clock.now), telemetry.WithErrorHandler(l.onError))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Close(ctx)
	})
	l.p = p
	return l
}

func (l *steadyLoad) onError(_ error, rec schemas.Record) {
	l.errored.Add(1)
	i, err := strconv.Atoi(rec.TaskID[strings.LastIndexByte(rec.TaskID, '-')+1:])
	if err != nil || l.s.taskID(i) != rec.TaskID {
		panic(fmt.Sprintf("undelivered record of unknown task %q", rec.TaskID))
	}
	l.failMu.Lock()
	l.failed[i] = true
	l.failMu.Unlock()
}

// takeFailed returns and forgets the failed tasks of [from, to).
func (l *steadyLoad) takeFailed(from, to int) []int {
	l.failMu.Lock()
	defer l.failMu.Unlock()
	var out []int
	for i := from; i < to; i++ {
		if l.failed[i] {
			out = append(out, i)
			delete(l.failed, i)
		}
	}
	return out
}

// progress is the fraction of tasks fully acknowledged.
func (l *steadyLoad) progress() float64 { return float64(l.done.Load()) / float64(l.n) }

// start runs the load in the background; the channel gets its result.
func (l *steadyLoad) start(ctx context.Context) <-chan error {
	res := make(chan error, 1)
	go func() { res <- l.run(ctx) }()
	return res
}

func (l *steadyLoad) run(ctx context.Context) error {
	began := time.Now()
	for k, from := 0, 0; from < l.n; k, from = k+1, from+l.chunk {
		pause(ctx, time.Until(began.Add(time.Duration(k)*l.every)))
		to := min(from+l.chunk, l.n)
		if err := l.phase(ctx, from, to, l.open); err != nil {
			return err
		}
		if err := l.phase(ctx, from, to, l.close); err != nil {
			return err
		}
		l.done.Store(int64(to))
	}
	return nil
}

// phase sends emit's records for tasks [from, to) until the cluster has
// acknowledged every one of them.
func (l *steadyLoad) phase(ctx context.Context, from, to int, emit func(context.Context, int) error) error {
	todo := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		todo = append(todo, i)
	}
	for round := 0; len(todo) > 0; round++ {
		if round > 0 {
			l.resent.Add(int64(len(todo)))
			pause(ctx, 200*time.Millisecond)
		}
		for _, i := range todo {
			if err := emit(ctx, i); err != nil {
				return err
			}
		}
		// Flush returns once every record is acknowledged or failed; a
		// record the writer still retries makes it wait on.
		for {
			fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := l.p.Flush(fctx)
			timedOut := fctx.Err() != nil
			cancel()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, telemetry.ErrClosed) {
				return err
			}
			if !timedOut {
				break
			}
		}
		todo = l.takeFailed(from, to)
	}
	return nil
}

// open sends the records that open task i: its start (its end, for a task
// whose end comes first), its retries and its network start.
func (l *steadyLoad) open(ctx context.Context, i int) error {
	s, log, net := l.s, l.p.Logger(), l.p.Network()
	id, start := s.taskID(i), s.start(i)
	if s.endFirst(i) {
		if err := l.end(ctx, i); err != nil {
			return err
		}
	} else {
		l.clock.set(start)
		if err := log.StartEvent(ctx, s.eventName(i), id, telemetry.WithPipelineID("pl-1"), telemetry.WithProcessID(int64(i))); err != nil {
			return err
		}
	}
	for r := 0; r < s.retries(i); r++ {
		l.clock.set(start.Add(time.Duration(r+1) * time.Microsecond))
		if err := log.RecordRetry(ctx, id); err != nil {
			return err
		}
	}
	if s.hasOp(i) {
		l.clock.set(start)
		return net.StartOperation(ctx, id, "db.internal", 5432, telemetry.WithOperation("db_query"), telemetry.WithOpID("q1"))
	}
	return nil
}

// close sends the records that finish task i.
func (l *steadyLoad) close(ctx context.Context, i int) error {
	s := l.s
	if s.endFirst(i) {
		l.clock.set(s.start(i))
		if err := l.p.Logger().StartEvent(ctx, s.eventName(i), s.taskID(i), telemetry.WithPipelineID("pl-1"), telemetry.WithProcessID(int64(i))); err != nil {
			return err
		}
	} else if err := l.end(ctx, i); err != nil {
		return err
	}
	if s.hasOp(i) {
		var opErr error
		if s.opFailed(i) {
			opErr = errors.New("reset")
		}
		l.clock.set(s.start(i).Add(s.latency(i)))
		return l.p.Network().EndOperation(ctx, s.taskID(i), int64(i), int64(2*i), opErr, telemetry.WithOpID("q1"))
	}
	return nil
}

func (l *steadyLoad) end(ctx context.Context, i int) error {
	var taskErr error
	if l.s.failed(i) {
		taskErr = errors.New("boom")
	}
	l.clock.set(l.s.start(i).Add(l.s.duration(i)))
	return l.p.Logger().EndEvent(ctx, l.s.taskID(i), taskErr)
}

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
