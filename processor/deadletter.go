package processor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/internal/backoff"
	"github.com/pipetel/pipetel/schemas"
)

// Dead-letter record headers. The record keeps its original key and value.
const (
	HeaderError           = "pipetel-error"
	HeaderErrorCode       = "pipetel-error-code"
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
)

// recordOverhead is what Kafka's record and batch framing add to a
// record's key, value and headers, with room to spare.
const recordOverhead = 512

// CodeApplyFailed is the dead-letter code of a valid record whose
// transaction failed twice on its own while the store took other writes:
// a failure of that record, not of the disk or the broker, so the partition
// skips it instead of stopping on it for good.
const CodeApplyFailed = "apply_failed"

// applyError is why a record was dead-lettered with CodeApplyFailed.
type applyError struct{ err error }

func (e *applyError) Error() string { return "cannot apply record: " + e.err.Error() }
func (e *applyError) Unwrap() error { return e.err }

// errorCode is the code of a dead-lettered record's error.
func errorCode(err error) string {
	var de *schemas.DecodeError
	var ae *applyError
	switch {
	case errors.As(err, &de):
		return string(de.Code)
	case errors.As(err, &ae):
		return CodeApplyFailed
	}
	return "unknown"
}

// deadLetters writes invalid records to the dead-letter topic before the
// batch that contained them is committed, so none is lost.
type deadLetters struct {
	w        *kafka.Writer
	m        *metrics
	maxBytes int
}

func newDeadLetters(cfg Config, m *metrics) *deadLetters {
	return &deadLetters{m: m, maxBytes: cfg.DeadLetterMaxBytes, w: &kafka.Writer{
		Addr:                   kafka.TCP(cfg.Brokers...),
		Topic:                  cfg.DeadLetterTopic,
		Balancer:               &kafka.Murmur2Balancer{},
		RequiredAcks:           kafka.RequireAll,
		BatchTimeout:           5 * time.Millisecond,
		BatchBytes:             int64(cfg.DeadLetterMaxBytes),
		AllowAutoTopicCreation: true,
		Transport:              &kafka.Transport{},
	}}
}

func (d *deadLetters) send(ctx context.Context, invalid []decoded) error {
	msgs := make([]kafka.Message, len(invalid))
	for i, in := range invalid {
		msgs[i] = deadLetter(in, errorCode(in.err), d.maxBytes)
	}
	wait := backoff.New(100*time.Millisecond, 5*time.Second, backoff.None)
	for attempt := 1; ; attempt++ {
		err := d.w.WriteMessages(ctx, msgs...)
		if err == nil {
			d.m.deadLetters.Add(float64(len(msgs)))
			return nil
		}
		// Retry only what failed, so that a partly written batch does not
		// put the written ones in the topic twice.
		var failed kafka.WriteErrors
		if errors.As(err, &failed) && len(failed) == len(msgs) {
			rest := msgs[:0:0]
			for i, e := range failed {
				if e != nil {
					rest = append(rest, msgs[i])
				}
			}
			d.m.deadLetters.Add(float64(len(msgs) - len(rest)))
			msgs = rest
			if len(msgs) == 0 {
				return nil
			}
		}
		if attempt == 10 || !wait.Sleep(ctx) {
			return fmt.Errorf("cannot write %d records to dead-letter topic %q: %w", len(msgs), d.w.Topic, err)
		}
	}
}

// deadLetter builds the dead-letter record of an invalid record: its key,
// its value (cut to fit maxBytes with the headers, see HeaderCut) and
// headers naming the reason and the source.
func deadLetter(in decoded, code string, maxBytes int) kafka.Message {
	m := kafka.Message{
		Key:   in.msg.Key,
		Value: in.msg.Value,
		Headers: []kafka.Header{
			{Key: HeaderError, Value: []byte(in.err.Error())},
			{Key: HeaderErrorCode, Value: []byte(code)},
			{Key: HeaderSourceTopic, Value: []byte(in.msg.Topic)},
			{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(in.msg.Partition))},
			{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(in.msg.Offset, 10))},
		},
	}
	size := len(m.Key) + len(m.Value) + recordOverhead
	for _, h := range m.Headers {
		size += len(h.Key) + len(h.Value) + 8
	}
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

func (d *deadLetters) close() { d.w.Close() }
