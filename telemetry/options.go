package telemetry

import (
	"crypto/tls"

	"github.com/segmentio/kafka-go/sasl"
	"time"

	"github.com/pipetel/pipetel/schemas"
)

// Defaults of the producer options.
const (
	DefaultBatchSize    = 1000
	DefaultBatchTimeout = 10 * time.Millisecond
	DefaultMaxInFlight  = 100000
)

// Option configures a Producer.
type Option func(*config)

type config struct {
	eventsTopic      string
	networkTopic     string
	clock            func() time.Time
	batchSize        int
	batchTimeout     time.Duration
	maxInFlight      int
	autoCreateTopics bool
	onError          func(err error, rec schemas.Record)
	tls              *tls.Config
	sasl             sasl.Mechanism
}

func defaultConfig() config {
	return config{
		eventsTopic:  schemas.DefaultEventsTopic,
		networkTopic: schemas.DefaultNetworkTopic,
		clock:        time.Now,
		batchSize:    DefaultBatchSize,
		batchTimeout: DefaultBatchTimeout,
		maxInFlight:  DefaultMaxInFlight,
	}
}

// WithTLS connects to the brokers with TLS (for example a RootCAs pool of
// the cluster's CA, Certificates for mutual TLS). Default: no TLS.
func WithTLS(cfg *tls.Config) Option {
	return func(c *config) { c.tls = cfg }
}

// WithSASL authenticates to the brokers, with kafka-go's mechanisms:
// plain.Mechanism{Username, Password} or scram.Mechanism(scram.SHA512, user,
// password) (packages github.com/segmentio/kafka-go/sasl/plain and
// .../sasl/scram). Default: none.
func WithSASL(m sasl.Mechanism) Option {
	return func(c *config) { c.sasl = m }
}

// WithEventsTopic sets the topic of event records (start, retry, end).
// Default: schemas.DefaultEventsTopic ("pipetel.events").
func WithEventsTopic(topic string) Option {
	return func(c *config) { c.eventsTopic = topic }
}

// WithNetworkTopic sets the topic of network records.
// Default: schemas.DefaultNetworkTopic ("pipetel.network").
func WithNetworkTopic(topic string) Option {
	return func(c *config) { c.networkTopic = topic }
}

// WithClock sets the clock read once per call for the record's time, so that
// tests get exact times. Default: time.Now.
func WithClock(now func() time.Time) Option {
	return func(c *config) { c.clock = now }
}

// WithBatchSize sets how many records the writer gathers per partition before
// sending a produce request. Default: DefaultBatchSize (1000). kafka-go
// allocates room for the whole batch (152 bytes a record) whenever it starts
// one, so a producer that sends a few records per BatchTimeout makes less
// garbage with a smaller size.
func WithBatchSize(n int) Option {
	return func(c *config) { c.batchSize = n }
}

// WithBatchTimeout sets how long the writer waits for a partition's batch to
// fill before sending it anyway; it bounds the latency a record spends in the
// producer. Default: DefaultBatchTimeout (10ms). kafka-go's own default of 1s
// is too slow for telemetry.
func WithBatchTimeout(d time.Duration) Option {
	return func(c *config) { c.batchTimeout = d }
}

// WithMaxInFlight bounds the records handed to the producer and not yet
// acknowledged or failed. A call that would exceed it blocks until a record
// completes or its ctx ends, so that a slow or unreachable cluster cannot make
// the producer grow without bound. Default: DefaultMaxInFlight (100000).
func WithMaxInFlight(n int) Option {
	return func(c *config) { c.maxInFlight = n }
}

// WithAutoTopicCreation lets the writer ask the broker to create missing
// topics (the broker must allow it too). Default: false, so that a typo in a
// topic name fails delivery instead of creating a stray topic.
func WithAutoTopicCreation(allow bool) Option {
	return func(c *config) { c.autoCreateTopics = allow }
}

// WithErrorHandler sets a function called once for every record that could
// not be delivered, with a *DeliveryError and the record. Default: none;
// delivery errors are then only returned by Flush and Close.
//
// The handler runs on the writer's completion goroutines (one per partition,
// so a slow handler delays that partition's deliveries), or on the goroutine
// of the failing call when the writer rejects the record before queueing it
// (for example an unknown topic). It must not block for long and must not call
// the Producer, its Logger or its Network: Flush and Close wait for the
// handler, and a call may wait for in-flight room that only the handler's
// return frees.
func WithErrorHandler(fn func(err error, rec schemas.Record)) Option {
	return func(c *config) { c.onError = fn }
}

// EventOption configures the record of Logger.StartEvent.
type EventOption func(*eventOptions)

type eventOptions struct {
	pipelineID string
	processID  *int64
}

// WithPipelineID sets the start record's pipeline id. Default: "" (none).
func WithPipelineID(id string) EventOption {
	return func(o *eventOptions) { o.pipelineID = id }
}

// WithProcessID sets the start record's process id. Default: none (the
// record carries no process id).
func WithProcessID(pid int64) EventOption {
	return func(o *eventOptions) { o.processID = &pid }
}

// OperationOption configures the records of Network.StartOperation and
// Network.EndOperation.
type OperationOption func(*operationOptions)

type operationOptions struct {
	operation string
	opID      string
}

// WithOperation names the network operation of a start record.
// Default: schemas.DefaultOperation ("remote_call").
func WithOperation(op string) OperationOption {
	return func(o *operationOptions) { o.operation = op }
}

// WithOpID sets the operation id that pairs a network start with its end when
// a task runs several operations; give the same id to both calls.
// Default: "".
func WithOpID(id string) OperationOption {
	return func(o *operationOptions) { o.opID = id }
}
