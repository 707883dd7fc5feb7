// Package deadletter is pipetel's one dead-letter writer: the processor's
// invalid input records and the metrics a publisher rejected for good go to
// the dead-letter topic through it, with one set of header names. A record
// keeps its key and value (an input record's own, a metric's task_id and
// JSON); the headers say why and where from.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/internal/backoff"
)

// Headers of a dead-letter record.
const (
	// HeaderError is why the record is here: the decode or apply error of
	// an input record, the backend's reason for a metric.
	HeaderError = "pipetel-error"
	// HeaderErrorCode is an input record's error code (schemas.ErrorCode,
	// or apply_failed).
	HeaderErrorCode = "pipetel-error-code"
	// HeaderSourceTopic, HeaderSourcePartition and HeaderSourceOffset
	// name where an input record was read.
	HeaderSourceTopic     = "pipetel-source-topic"
	HeaderSourcePartition = "pipetel-source-partition"
	HeaderSourceOffset    = "pipetel-source-offset"
	// HeaderCut is set when the value was cut to fit the dead-letter
	// record bound (processor.dead_letter_max_bytes): it holds the
	// original value's length in bytes; the record keeps the first bytes.
	HeaderCut = "pipetel-cut"
	// HeaderKeyCut is HeaderCut for a key too long for the bound even
	// with an empty value.
	HeaderKeyCut = "pipetel-key-cut"
	// HeaderPublisher names the publisher whose backend rejected a metric.
	HeaderPublisher = "pipetel-publisher"
	// HeaderMetricType is a rejected metric's type: event or network.
	HeaderMetricType = "pipetel-metric-type"
)

// RecordOverhead is what Kafka's record and batch framing add to a record's
// key, value and headers, with room to spare.
const RecordOverhead = 512

// Record builds a dead letter of key and value whose HeaderError is reason,
// followed by headers.
func Record(key, value []byte, reason string, headers ...kafka.Header) kafka.Message {
	return kafka.Message{Key: key, Value: value,
		Headers: append([]kafka.Header{{Key: HeaderError, Value: []byte(reason)}}, headers...)}
}

// Size is m's size on the wire as the bound counts it.
func Size(m kafka.Message) int {
	size := len(m.Key) + len(m.Value) + RecordOverhead
	for _, h := range m.Headers {
		size += len(h.Key) + len(h.Value) + 8
	}
	return size
}

// Fit cuts m to maxBytes: a key longer than half the bound is cut to it
// (HeaderKeyCut), then the value to what is left (HeaderCut); each cut
// header holds the original length. Fit keeps the first bytes.
func Fit(m kafka.Message, maxBytes int) kafka.Message {
	size := Size(m)
	if size <= maxBytes {
		return m
	}
	const cutHeaders = 2 * (len(HeaderKeyCut) + 8 + 20)
	if keyRoom := maxBytes / 2; len(m.Key) > keyRoom {
		m.Headers = append(m.Headers, kafka.Header{Key: HeaderKeyCut, Value: []byte(strconv.Itoa(len(m.Key)))})
		size -= len(m.Key) - keyRoom
		m.Key = m.Key[:keyRoom]
	}
	if size+cutHeaders > maxBytes {
		room := max(maxBytes-(size-len(m.Value))-cutHeaders, 0)
		m.Headers = append(m.Headers, kafka.Header{Key: HeaderCut, Value: []byte(strconv.Itoa(len(m.Value)))})
		m.Value = m.Value[:min(room, len(m.Value))]
	}
	return m
}

// Config places and bounds a Writer.
type Config struct {
	Brokers []string
	Topic   string
	// MaxBytes bounds one record (see Fit) and one produce batch; 0: no
	// cut, kafka-go's default batch bound.
	MaxBytes int
	// Attempts is how many times Write tries (only the records that
	// failed, after the first), waiting 100ms doubling to 5s in between.
	// Below 1: once.
	Attempts int
	// Transport connects to the brokers (TLS, SASL); nil: plaintext.
	Transport *kafka.Transport
}

// Writer writes dead letters to the topic with acks=all, keyed with
// Murmur2 like the input. It is safe for concurrent use.
type Writer struct {
	w   *kafka.Writer
	cfg Config
}

// New returns the writer of cfg.Topic on cfg.Brokers.
func New(cfg Config) *Writer {
	w := &kafka.Writer{
		Addr:                   kafka.TCP(cfg.Brokers...),
		Topic:                  cfg.Topic,
		Balancer:               &kafka.Murmur2Balancer{},
		RequiredAcks:           kafka.RequireAll,
		BatchTimeout:           5 * time.Millisecond,
		AllowAutoTopicCreation: true,
		Transport:              cfg.Transport,
	}
	if w.Transport == nil {
		w.Transport = &kafka.Transport{}
	}
	if cfg.MaxBytes > 0 {
		w.BatchBytes = int64(cfg.MaxBytes)
	}
	return &Writer{w: w, cfg: cfg}
}

// Topic is the dead-letter topic.
func (w *Writer) Topic() string { return w.cfg.Topic }

// Write writes msgs, each cut to the bound, retrying only the records that
// failed, so that a partly written batch does not put the written ones in
// the topic twice, until they are all written, the attempts are used up or
// ctx ends. written, when not nil, is told how many records each attempt
// wrote, after they were.
func (w *Writer) Write(ctx context.Context, msgs []kafka.Message, written func(n int)) error {
	if w.cfg.MaxBytes > 0 {
		for i := range msgs {
			msgs[i] = Fit(msgs[i], w.cfg.MaxBytes)
		}
	}
	if written == nil {
		written = func(int) {}
	}
	wait := backoff.New(100*time.Millisecond, 5*time.Second, backoff.None)
	for attempt := 1; ; attempt++ {
		err := w.w.WriteMessages(ctx, msgs...)
		if err == nil {
			written(len(msgs))
			return nil
		}
		var failed kafka.WriteErrors
		if errors.As(err, &failed) && len(failed) == len(msgs) {
			rest := msgs[:0:0]
			for i, e := range failed {
				if e != nil {
					rest = append(rest, msgs[i])
				}
			}
			written(len(msgs) - len(rest))
			msgs = rest
			if len(msgs) == 0 {
				return nil
			}
		}
		if attempt >= w.cfg.Attempts || !wait.Sleep(ctx) {
			return fmt.Errorf("cannot write %d records to dead-letter topic %q: %w", len(msgs), w.cfg.Topic, err)
		}
	}
}

// Close flushes and closes the writer.
func (w *Writer) Close() error { return w.w.Close() }
