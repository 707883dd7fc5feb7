// Package devmode is pipetel dev: the whole pipeline in one process on
// an embedded broker (kfake), a temporary state directory and a synthetic
// pipeline that emits tasks through the producer SDK, with a progress line
// on stderr and, for --tasks N, a JSON summary on stdout.
package devmode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pipetel/pipetel/internal/app"
	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
	"github.com/pipetel/pipetel/telemetry"
)

// devSummary is the last line pipetel dev --tasks N prints.
type devSummary struct {
	Tasks             int     `json:"tasks"`
	Completed         int     `json:"completed"`
	Failed            int     `json:"failed"`
	Retries           int64   `json:"retries"`
	NetworkOperations int64   `json:"network_operations"`
	P50Seconds        float64 `json:"p50_seconds"`
	P99Seconds        float64 `json:"p99_seconds"`
	Records           int64   `json:"records"`
	RecordsPerSecond  float64 `json:"records_per_second"`
	ElapsedSeconds    float64 `json:"elapsed_seconds"`
}

// Command is pipetel dev: an embedded broker, one instance on a temporary
// state directory and a synthetic pipeline, until interrupted or, with
// --tasks N, until N tasks are finished and summarized on stdout. stdout
// carries only that summary line (pipetel dev --tasks N | jq); the
// addresses, the progress and the log go to stderr.
func Command(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	tmp, err := os.MkdirTemp("", "pipetel-dev-")
	if err != nil {
		return fmt.Errorf("cannot create temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	cluster, err := startBroker(tmp, o)
	if err != nil {
		return err
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()

	var cfg app.Config
	cfg.Processor.Brokers = brokers
	cfg.Processor.SessionTimeout = 2 * time.Second
	cfg.Processor.HeartbeatInterval = 200 * time.Millisecond
	cfg.Processor.RebalanceTimeout = 2 * time.Second
	cfg.State.Dir = filepath.Join(tmp, "state")
	cfg.HTTP.Listen = o.listen
	cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	a, err := app.New(cfg, log)
	if err != nil {
		return err
	}
	appCtx, stopApp := context.WithCancel(context.WithoutCancel(ctx))
	appDone := make(chan error, 1)
	go func() { appDone <- a.Run(appCtx) }()
	stop := func() error {
		stopApp()
		return <-appDone
	}
	pc := cfg.Processor
	fmt.Fprintf(stderr, "pipetel dev: Kafka broker %s, topics %s (events) and %s (network operations), %d partitions each; invalid records go to %s\n",
		strings.Join(brokers, ","), pc.EventsTopic, pc.NetworkTopic, o.partitions, pc.DeadLetterTopic)
	if o.kafkaPublic {
		fmt.Fprintf(stderr, "pipetel dev: warning: the broker listens beyond loopback, on %s: anyone who reaches it can produce and consume, without credentials\n", strings.Join(brokers, ","))
	}
	fmt.Fprintf(stderr, "pipetel dev: metrics and API on http://%s (try /api/v1/events?status=failed, /api/v1/retries, /metrics)\n", a.Addr())
	if !o.synthetic() {
		fmt.Fprintf(stderr, "pipetel dev: no synthetic traffic (--rate 0): produce your own records to %s\n", strings.Join(brokers, ","))
	}
	select {
	case <-a.Processor().Ready():
	case err := <-appDone:
		return fmt.Errorf("processor stopped before joining: %w", err)
	case <-ctx.Done():
		return stop()
	}
	if !o.synthetic() {
		progress := newProgress(stderr, a.Store(), nil, time.Now())
		progress.run(ctx)
		return stop()
	}

	producer, err := telemetry.NewProducer(brokers)
	if err != nil {
		return errors.Join(err, stop())
	}
	gen := newSynthetic(producer, o.seed)
	started := time.Now()
	progress := newProgress(stderr, a.Store(), gen, started)
	progCtx, stopProgress := context.WithCancel(ctx)
	progDone := make(chan struct{})
	go func() { progress.run(progCtx); close(progDone) }()

	var runErr error
	if o.tasks > 0 {
		runErr = gen.runTasks(ctx, o.tasks, o.workers)
	} else {
		runErr = gen.runRate(ctx, o.rate, o.workers)
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	runErr = errors.Join(runErr, producer.Close(fctx))
	cancel()
	if runErr == nil && o.tasks > 0 {
		runErr = waitFinished(ctx, a.Store(), int64(o.tasks), gen.networkOps.Load())
	}
	stopProgress()
	<-progDone
	if runErr != nil || o.tasks == 0 {
		if errors.Is(runErr, context.Canceled) {
			runErr = nil
		}
		return errors.Join(runErr, stop())
	}
	elapsed := time.Since(started)
	sum, err := summarize(ctx, a.Store(), o.tasks)
	if err != nil {
		return errors.Join(err, stop())
	}
	sum.NetworkOperations = gen.networkOps.Load()
	sum.Records = gen.records.Load()
	sum.ElapsedSeconds = round3(elapsed.Seconds())
	sum.RecordsPerSecond = round3(float64(sum.Records) / elapsed.Seconds())
	if err := stop(); err != nil {
		return err
	}
	line, _ := json.Marshal(sum)
	_, err = fmt.Fprintln(stdout, string(line))
	return err
}

// waitFinished waits until every task and network operation is finished.
func waitFinished(ctx context.Context, store *state.Store, tasks, netOps int64) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		ev, err := store.CountFinished(state.Events)
		if err != nil {
			return err
		}
		nw, err := store.CountFinished(state.Network)
		if err != nil {
			return err
		}
		if ev >= tasks && nw >= netOps {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("interrupted with %d of %d tasks finished: %w", ev, tasks, ctx.Err())
		case <-t.C:
		}
	}
}

// summarize reads every finished event once.
func summarize(ctx context.Context, store *state.Store, tasks int) (devSummary, error) {
	sum := devSummary{Tasks: tasks}
	var durations []float64
	cursor := ""
	for {
		page, err := store.Events(ctx, state.EventQuery{Limit: schemas.MaxLimit, Cursor: cursor})
		if err != nil {
			return sum, err
		}
		for _, m := range page.Items {
			switch m.Status {
			case schemas.StatusCompleted:
				sum.Completed++
			case schemas.StatusFailed:
				sum.Failed++
			}
			sum.Retries += int64(m.RetryCount)
			if m.DurationSeconds != nil {
				durations = append(durations, *m.DurationSeconds)
			}
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	slices.Sort(durations)
	sum.P50Seconds = round3(quantile(durations, 0.50))
	sum.P99Seconds = round3(quantile(durations, 0.99))
	return sum, nil
}

// quantile is the nearest-rank quantile of sorted values.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }

// progress prints one status line: rewritten in place on a terminal, plain
// lines every few seconds otherwise.
type progress struct {
	out     io.Writer
	tty     bool
	store   *state.Store
	gen     *synthetic // nil under --rate 0: the records are the user's
	started time.Time
}

func newProgress(out io.Writer, store *state.Store, gen *synthetic, started time.Time) *progress {
	tty := false
	if f, ok := out.(*os.File); ok {
		fi, err := f.Stat()
		tty = err == nil && fi.Mode()&os.ModeCharDevice != 0
	}
	return &progress{out: out, tty: tty, store: store, gen: gen, started: started}
}

func (p *progress) run(ctx context.Context) {
	every := 5 * time.Second
	if p.tty {
		every = 250 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if p.tty {
				p.print()
				fmt.Fprintln(p.out)
			}
			return
		case <-t.C:
			p.print()
		}
	}
}

func (p *progress) print() {
	ev, _ := p.store.CountFinished(state.Events)
	elapsed := time.Since(p.started).Seconds()
	if p.gen == nil {
		nw, _ := p.store.CountFinished(state.Network)
		p.write(fmt.Sprintf("%6.1fs  tasks finished %d  open %d  network ops finished %d  open %d", elapsed,
			ev, p.store.OpenTasks(state.Events), nw, p.store.OpenTasks(state.Network)))
		return
	}
	p.write(fmt.Sprintf("%6.1fs  tasks started %d  finished %d  open %d  network ops %d  records %d (%.0f/s)",
		elapsed, p.gen.started.Load(), ev, p.store.OpenTasks(state.Events), p.gen.networkOps.Load(),
		p.gen.records.Load(), float64(p.gen.records.Load())/elapsed))
}

func (p *progress) write(line string) {
	if p.tty {
		fmt.Fprintf(p.out, "\r\033[K%s", line)
	} else {
		fmt.Fprintln(p.out, line)
	}
}
