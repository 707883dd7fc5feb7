package devmode

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pipetel/pipetel/telemetry"
)

// synthetic is the demo pipeline of pipetel dev: realistic traffic through
// the SDK. Most events complete, some fail, some retry, some are slow, and
// many make network calls.
type synthetic struct {
	producer *telemetry.Producer
	runID    string

	mu  sync.Mutex
	rng *rand.Rand

	started    atomic.Int64
	records    atomic.Int64
	networkOps atomic.Int64
}

var (
	eventNames = []string{"extract_orders", "transform_orders", "load_warehouse", "score_fraud", "send_invoice", "resize_images"}
	hosts      = []string{"api.payments.internal", "db-primary.internal", "s3.eu-west-1.amazonaws.com", "search.internal"}
	operations = []string{"remote_call", "db_query", "object_put", "http_get"}
)

func newSynthetic(p *telemetry.Producer, seed uint64) *synthetic {
	return &synthetic{
		producer: p,
		runID:    fmt.Sprintf("%x", time.Now().UnixNano()&0xffffff),
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}
}

// plan is one task's random choices, drawn under the lock so that a seed
// gives the same mix.
type plan struct {
	name    string
	work    time.Duration
	retries int
	ops     int
	fail    bool
	netFail []bool
	host    []int
	op      []int
	bytes   []int64
}

func (g *synthetic) draw() plan {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.rng
	p := plan{name: eventNames[r.IntN(len(eventNames))]}
	switch x := r.Float64(); {
	case x < 0.02: // slow
		p.work = time.Second + time.Duration(r.Int64N(int64(1500*time.Millisecond)))
	default:
		p.work = 5*time.Millisecond + time.Duration(r.Int64N(int64(100*time.Millisecond)))
	}
	if r.Float64() < 0.15 {
		p.retries = 1 + r.IntN(3)
	}
	p.fail = r.Float64() < 0.08
	if r.Float64() < 0.6 {
		p.ops = 1 + r.IntN(2)
	}
	for range p.ops {
		p.netFail = append(p.netFail, r.Float64() < 0.03)
		p.host = append(p.host, r.IntN(len(hosts)))
		p.op = append(p.op, r.IntN(len(operations)))
		p.bytes = append(p.bytes, 100+r.Int64N(64<<10))
	}
	return p
}

func (g *synthetic) task(ctx context.Context, i int) error {
	p := g.draw()
	log, net := g.producer.Logger(), g.producer.Network()
	id := fmt.Sprintf("dev-%s-%07d", g.runID, i)
	g.started.Add(1)
	if err := log.StartEvent(ctx, p.name, id, telemetry.WithPipelineID("dev-pipeline"), telemetry.WithProcessID(int64(1000+i%8))); err != nil {
		return err
	}
	g.records.Add(1)
	step := p.work / time.Duration(1+p.retries+p.ops)
	for range p.retries {
		sleep(ctx, step)
		if err := log.RecordRetry(ctx, id); err != nil {
			return err
		}
		g.records.Add(1)
	}
	for j := range p.ops {
		opID := fmt.Sprint(j)
		if err := net.StartOperation(ctx, id, hosts[p.host[j]], 443, telemetry.WithOperation(operations[p.op[j]]), telemetry.WithOpID(opID)); err != nil {
			return err
		}
		sleep(ctx, step)
		var opErr error
		if p.netFail[j] {
			opErr = errors.New("connection reset by peer")
		}
		if err := net.EndOperation(ctx, id, p.bytes[j]/4, p.bytes[j], opErr, telemetry.WithOpID(opID)); err != nil {
			return err
		}
		g.records.Add(2)
		g.networkOps.Add(1)
	}
	sleep(ctx, step)
	var taskErr error
	if p.fail {
		taskErr = errors.New("upstream returned 503")
	}
	if err := log.EndEvent(ctx, id, taskErr); err != nil {
		return err
	}
	g.records.Add(1)
	return ctx.Err()
}

// runTasks runs exactly n tasks on workers goroutines.
func (g *synthetic) runTasks(ctx context.Context, n, workers int) error {
	next := atomic.Int64{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1))
				if i > n || ctx.Err() != nil {
					return
				}
				if err := g.task(ctx, i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// runRate starts rate tasks a second until ctx ends.
func (g *synthetic) runRate(ctx context.Context, rate, workers int) error {
	sem := make(chan struct{}, workers)
	t := time.NewTicker(time.Second / time.Duration(max(rate, 1)))
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := 1; ; i++ {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			_ = g.task(ctx, i)
		}()
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
