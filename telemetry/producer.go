package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/schemas"
)

// maxFailures bounds the distinct (topic, cause) delivery errors kept for
// Flush; causes that embed addresses or ports could otherwise pile up during a
// long outage when nobody calls Flush.
const maxFailures = 100

// Producer sends pipetel records to Kafka through one asynchronous kafka-go
// Writer, shared by its Logger and its Network. Its methods are safe for
// concurrent use.
type Producer struct {
	cfg       config
	transport *kafka.Transport
	writer    *kafka.Writer
	logger    Logger
	network   Network

	// slots holds one token per in-flight record; its capacity is the
	// WithMaxInFlight bound, so a full channel is back-pressure.
	slots  chan struct{}
	closed atomic.Bool

	mu sync.Mutex
	// epoch is the generation new records join; Flush starts a new one and
	// waits for the older ones to drain, so records sent during a Flush do
	// not delay it.
	epoch   uint64
	pending map[uint64]int
	// changed is closed and replaced whenever a generation drains.
	changed  chan struct{}
	failures []*DeliveryError
	dropped  int // failed records whose cause did not fit in failures
}

// inflight rides in kafka.Message.WriterData to the completion callback.
type inflight struct {
	rec   schemas.Record
	epoch uint64
}

// NewProducer returns a Producer for the cluster reachable at brokers
// ("host:port" each). It does not contact the cluster: the first record
// fetches metadata.
func NewProducer(brokers []string, opts ...Option) (*Producer, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(brokers); err != nil {
		return nil, fmt.Errorf("cannot create producer: %w", err)
	}
	p := &Producer{
		cfg: cfg,
		// A transport of its own: the shared kafka.DefaultTransport caches
		// metadata across every writer of the process.
		transport: &kafka.Transport{TLS: cfg.tls, SASL: cfg.sasl},
		slots:     make(chan struct{}, cfg.maxInFlight),
		pending:   make(map[uint64]int),
		changed:   make(chan struct{}),
	}
	p.writer = &kafka.Writer{
		Addr:                   kafka.TCP(brokers...),
		Balancer:               &kafka.Murmur2Balancer{},
		RequiredAcks:           kafka.RequireAll,
		Async:                  true,
		Completion:             p.complete,
		BatchSize:              cfg.batchSize,
		BatchTimeout:           cfg.batchTimeout,
		Transport:              p.transport,
		AllowAutoTopicCreation: cfg.autoCreateTopics,
	}
	p.logger.p = p
	p.network.p = p
	return p, nil
}

func (c *config) validate(brokers []string) error {
	if len(brokers) == 0 {
		return fmt.Errorf("%w: brokers: got none, expected at least one host:port", ErrInvalidOption)
	}
	for _, b := range brokers {
		if b == "" {
			return fmt.Errorf("%w: brokers: got \"\", expected host:port", ErrInvalidOption)
		}
	}
	switch {
	case c.eventsTopic == "":
		return fmt.Errorf("%w: WithEventsTopic: got \"\", expected a topic name", ErrInvalidOption)
	case c.networkTopic == "":
		return fmt.Errorf("%w: WithNetworkTopic: got \"\", expected a topic name", ErrInvalidOption)
	case c.clock == nil:
		return fmt.Errorf("%w: WithClock: got nil, expected a function", ErrInvalidOption)
	case c.batchSize < 1:
		return fmt.Errorf("%w: WithBatchSize: got %d, expected >= 1", ErrInvalidOption, c.batchSize)
	case c.batchTimeout <= 0:
		return fmt.Errorf("%w: WithBatchTimeout: got %s, expected > 0", ErrInvalidOption, c.batchTimeout)
	case c.maxInFlight < 1:
		return fmt.Errorf("%w: WithMaxInFlight: got %d, expected >= 1", ErrInvalidOption, c.maxInFlight)
	}
	return nil
}

// Logger returns the producer's event logger.
func (p *Producer) Logger() *Logger { return &p.logger }

// Network returns the producer's network operation logger.
func (p *Producer) Network() *Network { return &p.network }

// send encodes r and hands it to the writer. It returns an error only when r
// is not sent: r is invalid, ctx ended while waiting for in-flight room or for
// the first metadata, or the producer is closed. Delivery failures, including
// those the writer reports before queueing, go to the error handler and Flush.
func (p *Producer) send(ctx context.Context, topic string, r schemas.Record) error {
	if p.closed.Load() {
		return fmt.Errorf("cannot send %s record for task %q: %w", r.Kind, r.TaskID, ErrClosed)
	}
	value, err := schemas.Encode(r)
	if err != nil {
		return fmt.Errorf("cannot send %s record for task %q: %w", r.Kind, r.TaskID, err)
	}
	if err := p.acquire(ctx); err != nil {
		return fmt.Errorf("cannot send %s record for task %q: waiting for in-flight room: %w", r.Kind, r.TaskID, err)
	}
	f := &inflight{rec: r, epoch: p.begin()}
	// The Kafka timestamp is the wall clock at hand-over, not the record's
	// time: brokers reject timestamps more than an hour ahead
	// (log.message.timestamp.after.max.ms) and retention counts from it, so a
	// replay of old records must not carry their old times there.
	err = p.writer.WriteMessages(ctx, kafka.Message{
		Topic:      topic,
		Key:        []byte(r.TaskID),
		Value:      value,
		Time:       time.Now(),
		WriterData: f,
	})
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, io.ErrClosedPipe):
		p.finish(f.epoch, 1, nil)
		return fmt.Errorf("cannot send %s record for task %q: %w", r.Kind, r.TaskID, ErrClosed)
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		p.finish(f.epoch, 1, nil)
		return fmt.Errorf("cannot send %s record for task %q: %w", r.Kind, r.TaskID, err)
	}
	derr := &DeliveryError{Topic: topic, Records: 1, Err: err}
	if p.cfg.onError != nil {
		p.cfg.onError(derr, r)
	}
	p.finish(f.epoch, 1, derr)
	return nil
}

func (p *Producer) acquire(ctx context.Context) error {
	select {
	case p.slots <- struct{}{}:
		return nil
	default:
	}
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// begin registers one record in the current generation.
func (p *Producer) begin() uint64 {
	p.mu.Lock()
	e := p.epoch
	p.pending[e]++
	p.mu.Unlock()
	return e
}

// complete is the writer's Completion callback: msgs all went to one
// partition and share err.
func (p *Producer) complete(msgs []kafka.Message, err error) {
	if len(msgs) == 0 {
		return
	}
	var derr *DeliveryError
	if err != nil {
		derr = &DeliveryError{Topic: msgs[0].Topic, Records: len(msgs), Err: err}
		if p.cfg.onError != nil {
			for i := range msgs {
				p.cfg.onError(derr, msgs[i].WriterData.(*inflight).rec)
			}
		}
	}
	p.mu.Lock()
	for i := range msgs {
		p.done(msgs[i].WriterData.(*inflight).epoch)
	}
	if derr != nil {
		p.fail(derr)
	}
	p.mu.Unlock()
	for range msgs {
		<-p.slots
	}
}

// finish completes n records of generation e that never reached the writer's
// queue, and frees their slots.
func (p *Producer) finish(e uint64, n int, derr *DeliveryError) {
	p.mu.Lock()
	for range n {
		p.done(e)
	}
	if derr != nil {
		p.fail(derr)
	}
	p.mu.Unlock()
	for range n {
		<-p.slots
	}
}

// done completes one record of generation e; p.mu must be held.
func (p *Producer) done(e uint64) {
	p.pending[e]--
	if p.pending[e] == 0 {
		delete(p.pending, e)
		close(p.changed)
		p.changed = make(chan struct{})
	}
}

// fail adds derr to the failures Flush will return, merged with an earlier
// failure of the same topic and cause; p.mu must be held.
func (p *Producer) fail(derr *DeliveryError) {
	cause := derr.Err.Error()
	for _, f := range p.failures {
		if f.Topic == derr.Topic && f.Err.Error() == cause {
			f.Records += derr.Records
			return
		}
	}
	if len(p.failures) == maxFailures {
		p.dropped += derr.Records
		return
	}
	// A copy: the handler may still hold derr.
	cp := *derr
	p.failures = append(p.failures, &cp)
}

// takeFailures returns the failures since the last call, joined, and forgets
// them; p.mu must be held.
func (p *Producer) takeFailures() error {
	errs := make([]error, 0, len(p.failures)+1)
	for _, f := range p.failures {
		errs = append(errs, f)
	}
	if p.dropped > 0 {
		errs = append(errs, fmt.Errorf("cannot deliver %d more records: causes beyond the first %d not kept, see the error handler", p.dropped, maxFailures))
	}
	p.failures, p.dropped = nil, 0
	return errors.Join(errs...)
}

// pendingThrough counts the in-flight records of generations <= e; p.mu must
// be held.
func (p *Producer) pendingThrough(e uint64) int {
	n := 0
	for g, c := range p.pending {
		if g <= e {
			n += c
		}
	}
	return n
}

// Flush waits until every record handed over before the call is acknowledged
// by the cluster or has failed, then returns the delivery errors since the
// previous Flush (nil if none): one *DeliveryError per topic and cause, joined
// with errors.Join. If ctx ends first, Flush returns ctx's error, joined with
// the delivery errors so far. Records sent during Flush do not delay it.
// After Close, Flush returns ErrClosed.
func (p *Producer) Flush(ctx context.Context) error {
	if p.closed.Load() {
		return fmt.Errorf("cannot flush: %w", ErrClosed)
	}
	return p.flush(ctx)
}

func (p *Producer) flush(ctx context.Context) error {
	p.mu.Lock()
	target := p.epoch
	p.epoch++
	for p.pendingThrough(target) > 0 {
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			p.mu.Lock()
			n := p.pendingThrough(target)
			failures := p.takeFailures()
			p.mu.Unlock()
			return errors.Join(fmt.Errorf("cannot flush %d records: %w", n, ctx.Err()), failures)
		}
		p.mu.Lock()
	}
	failures := p.takeFailures()
	p.mu.Unlock()
	return failures
}

// Close sends what the writer still holds, waits until every record is
// acknowledged or has failed, closes the writer and its connections, and
// returns the delivery errors since the last Flush (see Flush). Calls made
// after Close starts return ErrClosed. If ctx ends first, Close returns its
// error and the writer finishes closing in the background. Closing again
// returns nil.
func (p *Producer) Close(ctx context.Context) error {
	if !p.closed.CompareAndSwap(false, true) {
		return nil
	}
	// Writer.Close rather than a Flush first: it sends the partial batches at
	// once instead of after BatchTimeout, and waits for their completions.
	closed := make(chan error, 1)
	go func() {
		werr := p.writer.Close()
		p.transport.CloseIdleConnections()
		closed <- werr
	}()
	var err error
	select {
	case werr := <-closed:
		if werr != nil {
			err = fmt.Errorf("cannot close writer: %w", werr)
		}
	case <-ctx.Done():
	}
	return errors.Join(err, p.flush(ctx))
}
