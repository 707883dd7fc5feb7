// Package delivery moves finished metrics from the state store to the
// backends: one Delivery per publisher drains that publisher's outbox in
// batches, at least once, retrying with backoff, dead-lettering what the
// backend rejected for good (KafkaDeadLetter) and exporting its progress
// (pipetel_publish_*, pipetel_outbox_*); a deep outbox pauses the
// processor's fetches (backpressure). StateMetrics exports the aggregates
// kept in the state, for /metrics and the Grafana Cloud push. The
// publishers themselves (package sinks) know only schemas; this package is
// where state's outbox items become schemas metrics.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipetel/pipetel/internal/backoff"
	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/sinks"
	"github.com/pipetel/pipetel/state"
)

// Outbox is the durable queue a Delivery drains: one per publisher, filled by
// the processor in the same transaction that finishes a metric.
type Outbox interface {
	ReadOutboxBytes(publisher string, max, maxBytes int) ([]state.OutboxItem, error)
	AckOutbox(publisher string, items []state.OutboxItem) error
	OutboxDepth(publisher string) int64
	OutboxSignal(publisher string) <-chan struct{}
}

// DeadLetterer keeps metrics that a backend rejected for good, with the
// reason, so that none is dropped.
type DeadLetterer interface {
	DeadLetter(ctx context.Context, publisher string, items []state.OutboxItem, reason error) error
}

var _ Outbox = (*state.Store)(nil)

// DeliveryConfig tunes one publisher's delivery loop.
type DeliveryConfig struct {
	// BatchSize is the most metrics per publish call (for Elasticsearch,
	// per bulk request). Default 5000.
	BatchSize int `yaml:"batch_size"`
	// BatchBytes ends a batch once its metrics take this many bytes in the
	// outbox (about a third of their JSON), so long error texts cannot make
	// one request huge. Default 2 MiB.
	BatchBytes int `yaml:"batch_bytes"`
	// MinBackoff and MaxBackoff bound the exponential backoff (with full
	// jitter) between failed attempts. Defaults 100ms and 30s.
	MinBackoff time.Duration `yaml:"min_backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// Timeout bounds one publish call. Default 30s.
	Timeout time.Duration `yaml:"timeout"`
}

func (c DeliveryConfig) withDefaults() DeliveryConfig {
	if c.BatchSize <= 0 {
		c.BatchSize = 5000
	}
	if c.BatchBytes <= 0 {
		c.BatchBytes = 2 << 20
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	return c
}

// Delivery moves one publisher's outbox to its backend: at least once, in
// batches, retrying with backoff, dead-lettering what the backend rejects for
// good. A slow or failing backend only grows its own outbox: every publisher
// has its own Delivery, so the others go on.
type Delivery struct {
	pub    sinks.Publisher
	outbox Outbox
	dead   DeadLetterer
	cfg    DeliveryConfig
	log    *slog.Logger
	m      *deliveryMetrics
}

// NewDelivery builds the delivery loop of pub. Its metrics are registered on
// reg with a publisher label.
func NewDelivery(pub sinks.Publisher, outbox Outbox, dead DeadLetterer, cfg DeliveryConfig, reg prometheus.Registerer, log *slog.Logger) (*Delivery, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Delivery{pub: pub, outbox: outbox, dead: dead, cfg: cfg.withDefaults(), log: log.With("publisher", pub.Name())}
	m, err := newDeliveryMetrics(reg, pub.Name(), outbox, d)
	if err != nil {
		return nil, err
	}
	d.m = m
	return d, nil
}

// Setupper is a publisher with something to set up in its backend before
// its first delivery (Elasticsearch: the index template). Run calls Setup,
// retrying with the delivery's backoff, before it delivers anything: an
// unreachable backend delays only its own deliveries.
type Setupper interface {
	Setup(ctx context.Context) error
}

// Run sets the publisher up (see Setupper), then delivers until ctx is
// cancelled. What is not delivered stays in the outbox for the next start.
func (d *Delivery) Run(ctx context.Context) error {
	if s, ok := d.pub.(Setupper); ok && !d.setup(ctx, s) {
		return nil
	}
	name := d.pub.Name()
	retry := backoff.New(d.cfg.MinBackoff, d.cfg.MaxBackoff, backoff.Full)
	idle := time.NewTicker(time.Second)
	defer idle.Stop()
	for ctx.Err() == nil {
		items, err := d.outbox.ReadOutboxBytes(name, d.cfg.BatchSize, d.cfg.BatchBytes)
		if err != nil {
			return err
		}
		if len(items) == 0 {
			select {
			case <-ctx.Done():
			case <-d.outbox.OutboxSignal(name):
			case <-idle.C:
			}
			continue
		}
		d.m.setOldest(items[0].Enqueued)
		if done, err := d.deliver(ctx, items); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			wait := retry.Next()
			d.log.Warn("cannot publish; will retry", "items", len(items)-done, "retry_in", wait.Round(time.Millisecond), "err", err)
			d.m.retried.Add(float64(len(items) - done))
			backoff.Wait(ctx, wait)
			continue
		}
		retry.Reset()
	}
	return nil
}

// setup runs s.Setup, retrying with backoff until it succeeds (true) or ctx
// ends (false). A permanent error (4xx: the configuration, not the network)
// is logged as an error, the others as warnings; both are retried.
func (d *Delivery) setup(ctx context.Context, s Setupper) bool {
	b := backoff.New(d.cfg.MinBackoff, d.cfg.MaxBackoff, backoff.None)
	for attempt := 1; ; attempt++ {
		err := s.Setup(ctx)
		if err == nil {
			d.log.Info("publisher set up", "attempts", attempt)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		level := slog.LevelWarn
		if errors.Is(err, sinks.ErrPermanent) {
			level = slog.LevelError
		}
		wait := b.Next()
		d.log.Log(ctx, level, "cannot set up publisher; deliveries wait for it",
			"attempt", attempt, "retry_in", wait.Round(time.Millisecond), "err", err)
		if !backoff.Wait(ctx, wait) {
			return false
		}
	}
}

// deliver publishes items, events then network operations, acknowledging
// each kind once its publish succeeded or its rejects were dead-lettered. It
// returns how many items left the outbox.
func (d *Delivery) deliver(ctx context.Context, items []state.OutboxItem) (int, error) {
	var events, network []state.OutboxItem
	for _, it := range items {
		if it.Event != nil {
			events = append(events, it)
		} else {
			network = append(network, it)
		}
	}
	done := 0
	if len(events) > 0 {
		ms := make([]schemas.EventMetric, len(events))
		for i, it := range events {
			ms[i] = *it.Event
		}
		n, err := d.publish(ctx, events, func(ctx context.Context) error { return d.pub.PublishEvents(ctx, ms) })
		done += n
		if err != nil {
			return done, err
		}
	}
	if len(network) > 0 {
		ms := make([]schemas.NetworkMetric, len(network))
		for i, it := range network {
			ms[i] = *it.Network
		}
		n, err := d.publish(ctx, network, func(ctx context.Context) error { return d.pub.PublishNetwork(ctx, ms) })
		return done + n, err
	}
	return done, nil
}

func (d *Delivery) publish(ctx context.Context, items []state.OutboxItem, call func(context.Context) error) (int, error) {
	cctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	started := time.Now()
	err := call(cctx)
	cancel()
	d.m.latency.Observe(time.Since(started).Seconds())
	if err == nil {
		d.m.sent.Add(float64(len(items)))
		return len(items), d.ack(items)
	}
	d.m.failed.Add(float64(len(items)))
	var rej *sinks.RejectedError
	switch {
	case errors.As(err, &rej):
		bad := map[string]bool{}
		for _, r := range rej.Items {
			bad[r.ID] = true
		}
		var dead, rest []state.OutboxItem
		for _, it := range items {
			if bad[itemID(it)] {
				dead = append(dead, it)
			} else {
				rest = append(rest, it)
			}
		}
		if err := d.deadLetter(ctx, dead, rej); err != nil {
			return 0, err
		}
		if isOnly(err, rej) {
			d.m.sent.Add(float64(len(rest)))
			return len(items), d.ack(rest)
		}
		return len(dead), err // the rest is retried; resending accepted items is idempotent by id
	case errors.Is(err, sinks.ErrAuth):
		return 0, err // keep everything until the credentials are fixed
	case errors.Is(err, sinks.ErrPermanent):
		if err := d.deadLetter(ctx, items, err); err != nil {
			return 0, err
		}
		return len(items), nil
	}
	return 0, err
}

// isOnly reports whether err carries nothing but rej.
func isOnly(err error, rej *sinks.RejectedError) bool {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			if e != error(rej) {
				return false
			}
		}
		return true
	}
	return err == error(rej)
}

func (d *Delivery) deadLetter(ctx context.Context, items []state.OutboxItem, reason error) error {
	if len(items) == 0 {
		return nil
	}
	if d.dead == nil {
		return fmt.Errorf("cannot dead-letter %d metrics of publisher %q: no dead-letter path configured: %w", len(items), d.pub.Name(), reason)
	}
	if err := d.dead.DeadLetter(ctx, d.pub.Name(), items, reason); err != nil {
		return err
	}
	d.m.deadLettered.Add(float64(len(items)))
	return d.ack(items)
}

func (d *Delivery) ack(items []state.OutboxItem) error {
	if err := d.outbox.AckOutbox(d.pub.Name(), items); err != nil {
		return err
	}
	return nil
}

// itemID is the backend id of an outbox item, as RejectedError names it.
func itemID(it state.OutboxItem) string {
	if it.Event != nil {
		return it.Event.TaskID
	}
	return it.Network.TaskID + "/" + it.Network.OpID
}
