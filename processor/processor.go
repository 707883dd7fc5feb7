package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
)

// Processor consumes the input topics as one member of the consumer group.
type Processor struct {
	cfg     Config
	store   *state.Store
	log     *slog.Logger
	m       *metrics
	decoder schemas.Decoder
	dlq     *deadLetters
	// changelog is nil when the operator disabled it.
	changelog *Changelog

	loggedMu sync.Mutex
	logged   map[string]bool // topic/code pairs already logged

	readyOnce sync.Once
	ready     chan struct{}
	restoring atomic.Int64 // partitions in prepareState, for Readiness
}

// NewChangelog returns the changelog the store must be opened with, unless
// cfg disables it (then nil): every unit change is written to a compacted
// topic per input topic, named <group_id>-<topic>-changelog.
func NewChangelog(cfg Config) *Changelog {
	cfg = cfg.WithDefaults()
	if cfg.DisableChangelog {
		return nil
	}
	return newChangelog(cfg)
}

// ForStore is the changelog as state.Options.Changelog takes it: nil (no
// changelog) for a nil c, not an interface holding a nil pointer.
func (c *Changelog) ForStore() state.Changelog {
	if c == nil {
		return nil
	}
	return c
}

// New builds a processor over store and cl, the changelog the store was
// opened with (cl.ForStore()); nil when cfg disables the changelog. cfg is
// completed with its defaults and validated. The processor's metrics are
// registered on reg.
func New(cfg Config, store *state.Store, cl *Changelog, reg prometheus.Registerer, log *slog.Logger) (*Processor, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg, store, cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot register processor metrics: %w", err)
	}
	switch {
	case cfg.DisableChangelog && cl != nil:
		return nil, errors.New("cannot build processor: a changelog was given but processor.disable_changelog is set")
	case !cfg.DisableChangelog && (cl == nil || store.Changelog() != state.Changelog(cl)):
		return nil, errors.New("cannot build processor: the state store must be opened with the changelog given to New (processor.NewChangelog(cfg).ForStore())")
	}
	return &Processor{
		cfg: cfg, store: store, log: log, m: m, changelog: cl,
		decoder: schemas.Decoder{MaxBytes: cfg.MaxRecordBytes},
		dlq:     newDeadLetters(cfg, m),
		logged:  map[string]bool{},
		ready:   make(chan struct{}),
	}, nil
}

// Ready is closed once the processor has joined the group and received its
// first assignment.
func (p *Processor) Ready() <-chan struct{} { return p.ready }

// Readiness says why the processor should not get traffic yet, nil when it
// should: it has joined its group and no partition is being restored. A
// member without a generation (rebalancing, or the brokers out of reach)
// answers queries only for what it already has.
func (p *Processor) Readiness() error {
	select {
	case <-p.ready:
	default:
		return errors.New("not yet a member of the consumer group")
	}
	if n := p.restoring.Load(); n > 0 {
		return fmt.Errorf("restoring %d partitions from the changelog", n)
	}
	return nil
}

// Run consumes until ctx is cancelled. On cancellation it stops fetching,
// finishes and commits the batches in flight, and returns nil.
func (p *Processor) Run(ctx context.Context) error {
	defer p.dlq.close()
	// Instances started at the same moment create the same topics: one
	// wins, the others see "already exists" and then, for a moment, a topic
	// the metadata does not show yet. Set-up retries that with a deadline.
	if p.cfg.CreateTopics {
		if err := setupWithRetry(ctx, p.log, "create topics", func(ctx context.Context) error { return ensureTopics(ctx, p.cfg) }); err != nil {
			return err
		}
	}
	if p.changelog != nil {
		if err := setupWithRetry(ctx, p.log, "changelog topics", p.changelog.ensure); err != nil {
			return err
		}
	}
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                p.cfg.GroupID,
		Brokers:           p.cfg.Brokers,
		Dialer:            p.cfg.conn().Dialer(),
		Topics:            []string{p.cfg.EventsTopic, p.cfg.NetworkTopic},
		SessionTimeout:    p.cfg.SessionTimeout,
		HeartbeatInterval: p.cfg.HeartbeatInterval,
		RebalanceTimeout:  p.cfg.RebalanceTimeout,
		JoinGroupBackoff:  500 * time.Millisecond,
		StartOffset:       kafka.FirstOffset,
		GroupBalancers:    []kafka.GroupBalancer{advertisingBalancer{addr: p.cfg.AdvertiseHTTP}},
		ErrorLogger:       kafka.LoggerFunc(func(f string, a ...any) { p.log.Warn(fmt.Sprintf(f, a...), "component", "consumer-group") }),
	})
	if err != nil {
		return fmt.Errorf("cannot join consumer group %q: %w", p.cfg.GroupID, err)
	}
	defer group.Close()
	outer := ctx
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	tr := p.cfg.conn().Transport()
	defer tr.CloseIdleConnections()
	describer := &kafka.Client{Addr: kafka.TCP(p.cfg.Brokers...), Transport: tr, Timeout: 5 * time.Second}
	for {
		gen, err := group.Next(ctx)
		if err != nil {
			if cause := context.Cause(ctx); outer.Err() == nil && errors.Is(cause, ErrDuplicateAdvertise) {
				p.log.Error("stopping: the cluster view would be wrong", "err", cause)
				return cause
			}
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, kafka.ErrGroupClosed) {
				return nil
			}
			p.log.Warn("cannot start group generation; retrying", "group", p.cfg.GroupID, "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		n := 0
		for topic, parts := range gen.Assignments {
			stream := state.Events
			if topic == p.cfg.NetworkTopic {
				stream = state.Network
			}
			p.m.assigned.WithLabelValues(topic).Set(float64(len(parts)))
			for _, a := range parts {
				pc := &partitionConsumer{p: p, gen: gen, generation: int64(gen.ID), topic: topic, unit: state.Unit{Stream: stream, Partition: int32(a.ID)}, committed: a.Offset}
				gen.Start(pc.run)
				n++
			}
		}
		p.log.Info("joined consumer group", "group", p.cfg.GroupID, "generation", gen.ID, "member", gen.MemberID, "partitions", n)
		p.readyOnce.Do(func() { close(p.ready) })
		go func() {
			if err := p.checkAdvertised(ctx, describer); err != nil {
				stop(err)
			}
		}()
	}
}

// logInvalid logs the first invalid record of each topic and error code;
// the rest are only counted and dead-lettered.
func (p *Processor) logInvalid(topic string, partition int, offset int64, err error) {
	code := errorCode(err)
	p.loggedMu.Lock()
	first := !p.logged[topic+"/"+code]
	p.logged[topic+"/"+code] = true
	p.loggedMu.Unlock()
	p.m.invalid.WithLabelValues(topic, code).Inc()
	if first {
		p.log.Warn("invalid record sent to the dead-letter topic (further ones of this kind are only counted)",
			"topic", topic, "partition", partition, "offset", offset, "code", code, "err", err)
	}
}
