package e2e

import (
	"context"
	"errors"
	"fmt"
	"github.com/pipetel/pipetel/internal/app"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pipetel/pipetel/internal/testbroker"
	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/processor"
	"github.com/pipetel/pipetel/state"
)

// TestGroupSplitAndRestart runs two instances in one group: they split the
// partitions, and an instance restarted on its own state resumes from the
// committed offsets, so across the group every record is consumed once and
// every task finished once.
func TestGroupSplitAndRestart(t *testing.T) {
	const partitions = 8
	b := testbroker.Start(t)
	tt := newTestTopics(t, b, partitions)
	dirA, dirB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	a := startApp(t, testConfig(b, tt, dirA))
	inst := startApp(t, testConfig(b, tt, dirB))

	split := func(x, y *runningApp) func() (bool, string) {
		return func() (bool, string) {
			ex, ey := x.Store().Owned(state.Events), y.Store().Owned(state.Events)
			nx, ny := x.Store().Owned(state.Network), y.Store().Owned(state.Network)
			ok := len(ex) > 0 && len(ey) > 0 && len(ex)+len(ey) == partitions && len(nx)+len(ny) == partitions
			for _, p := range ex {
				for _, q := range ey {
					ok = ok && p != q
				}
			}
			return ok, fmt.Sprintf("events %v | %v, network %v | %v", ex, ey, nx, ny)
		}
	}
	waitFor(t, 60*time.Second, "two instances to split the partitions", split(a, inst))

	clock := &fakeClock{}
	p := newProducer(t, b, tt, clock)
	s := scenario{prefix: "grp", base: testclock.Now().Add(-time.Hour).Truncate(time.Millisecond)}
	const phase1, phase2 = 400, 300
	s.emit(t, p, clock, 0, phase1)

	counts := func(apps ...*runningApp) (finished, consumed, commitLag float64) {
		for _, x := range apps {
			f := x.scrape(t)
			finished += sumMetric(f, "pipetel_finished_total", map[string]string{"stream": "events"})
			consumed += sumMetric(f, "pipetel_records_consumed_total", nil)
			commitLag += sumMetric(f, "pipetel_commit_lag_records", nil)
		}
		return
	}
	records := func(n int) float64 { // records the scenario writes for tasks [0, n)
		total := 0
		for i := range n {
			total += 2 + s.retries(i)
			if s.hasOp(i) {
				total += 2
			}
		}
		return float64(total)
	}
	waitFor(t, 60*time.Second, "phase 1 finished and committed", func() (bool, string) {
		f, c, lag := counts(a, inst)
		return f == phase1 && c == records(phase1) && lag == 0, fmt.Sprintf("finished %v consumed %v (want %v) commit lag %v", f, c, records(phase1), lag)
	})
	firstF, firstC, _ := counts(inst)
	must(t, inst.stop())
	waitFor(t, 60*time.Second, "the remaining instance to own every partition", func() (bool, string) {
		e, n := a.Store().Owned(state.Events), a.Store().Owned(state.Network)
		return len(e) == partitions && len(n) == partitions, fmt.Sprintf("events %v network %v", e, n)
	})

	restarted := startApp(t, testConfig(b, tt, dirB))
	waitFor(t, 60*time.Second, "the restarted instance to take its share", split(a, restarted))
	s.emit(t, p, clock, phase1, phase1+phase2)
	waitFor(t, 60*time.Second, "phase 2 finished", func() (bool, string) {
		f, c, _ := counts(a, restarted)
		f, c = f+firstF, c+firstC
		return f == phase1+phase2 && c == records(phase1+phase2), fmt.Sprintf("finished %v consumed %v (want %v)", f, c, records(phase1+phase2))
	})
	// The totals stay exact once reached: nothing was applied twice.
	f, c, _ := counts(a, restarted)
	if f+firstF != phase1+phase2 || c+firstC != records(phase1+phase2) {
		t.Fatalf("after the drain: finished %v consumed %v, want %d and %v", f+firstF, c+firstC, phase1+phase2, records(phase1+phase2))
	}
	// Every task is queryable on exactly one instance: the partitions that
	// moved brought their state along through the changelog.
	for i := 0; i < phase1+phase2; i++ {
		_, inA, err := a.Store().Event(s.taskID(i))
		must(t, err)
		_, inB, err := restarted.Store().Event(s.taskID(i))
		must(t, err)
		if inA == inB {
			t.Fatalf("task %d: on first instance %v, on restarted instance %v; want exactly one", i, inA, inB)
		}
	}
}

// TestConcurrentFirstStarts starts three instances at the same moment on
// topics that do not exist yet, each told to create them: all three come
// up (none exits on a topic another one just created) and together finish
// every task.
func TestConcurrentFirstStarts(t *testing.T) {
	b := testbroker.Start(t)
	tt := testTopics{ // not created: the instances do it
		events: testbroker.Name(t, "events"), network: testbroker.Name(t, "network"),
		deadLetter: testbroker.Name(t, "dead"), group: testbroker.Name(t, "group"),
	}
	type started struct {
		a    *app.App
		done chan error
	}
	var insts [3]started
	// The state directories first: cleanups run last-in first-out, so the
	// instances stop (below) before their directories are removed.
	dirs := [len(insts)]string{t.TempDir(), t.TempDir(), t.TempDir()}
	start := make(chan struct{})
	var wg sync.WaitGroup
	var cancels []context.CancelFunc
	t.Cleanup(func() {
		for _, cancel := range cancels {
			cancel()
		}
		wg.Wait()
	})
	for i := range insts {
		cfg := testConfig(b, tt, dirs[i])
		cfg.Processor.CreateTopics, cfg.Processor.Partitions = true, 6
		must(t, cfg.Validate())
		a, err := app.New(cfg, slog.New(slog.DiscardHandler))
		must(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		cancels = append(cancels, cancel)
		insts[i] = started{a: a, done: make(chan error, 1)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-start:
				insts[i].done <- a.Run(ctx)
			case <-ctx.Done(): // the test failed before starting them
			}
		}()
	}
	close(start)
	for i, in := range insts {
		select {
		case <-in.a.Processor().Ready():
		case err := <-in.done:
			t.Fatalf("instance %d exited while starting: %v", i, err)
		case <-time.After(90 * time.Second):
			t.Fatalf("instance %d did not join the group within 90s", i)
		}
	}
	clock := &fakeClock{}
	p := newProducer(t, b, tt, clock)
	s := scenario{prefix: "first", base: testclock.Now().Add(-time.Hour).Truncate(time.Millisecond)}
	const n = 300
	s.emit(t, p, clock, 0, n)
	waitFor(t, 90*time.Second, "every task finished across the three instances", func() (bool, string) {
		var sum float64
		for i, in := range insts {
			select {
			case err := <-in.done:
				t.Fatalf("instance %d exited: %v", i, err)
			default:
			}
			resp, err := http.Get("http://" + in.a.Addr() + "/metrics")
			if err != nil {
				return false, err.Error()
			}
			parser := expfmt.NewTextParser(model.UTF8Validation)
			fams, err := parser.TextToMetricFamilies(resp.Body)
			resp.Body.Close()
			if err != nil {
				return false, err.Error()
			}
			sum += sumMetric(fams, "events_total", nil)
		}
		return sum == n, fmt.Sprintf("events_total over the instances %v", sum)
	})
}

// TestDuplicateAdvertiseStops: two live instances of one group that
// advertise the same HTTP address would make the cluster view take them for
// one; an instance stops with ErrDuplicateAdvertise once the session timeout
// rules out a restarted instance's old member. (The first to notice leaves
// the group, which ends the conflict: the other may keep running.)
func TestDuplicateAdvertiseStops(t *testing.T) {
	b := testbroker.Start(t)
	tt := newTestTopics(t, b, 2)
	dirs := []string{t.TempDir(), t.TempDir()}
	exited := make(chan error, 2)
	for _, dir := range dirs {
		cfg := testConfig(b, tt, dir)
		cfg.Processor.AdvertiseHTTP = "pipetel-0.example:8080"
		must(t, cfg.Validate())
		a, err := app.New(cfg, slog.New(slog.DiscardHandler))
		must(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			err := a.Run(ctx)
			if ctx.Err() == nil {
				exited <- err
			}
			close(done)
		}()
		t.Cleanup(func() {
			cancel()
			<-done
		})
	}
	select {
	case err := <-exited:
		if !errors.Is(err, processor.ErrDuplicateAdvertise) {
			t.Fatalf("instance exited with %v, want ErrDuplicateAdvertise", err)
		}
		if !strings.Contains(err.Error(), `advertise "pipetel-0.example:8080"`) {
			t.Errorf("error %q does not name the address", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("both instances still run 60s after they advertised one address")
	}
}
