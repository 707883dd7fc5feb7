package processor

import (
	"context"
	"errors"
	"strconv"

	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/internal/deadletter"
	"github.com/pipetel/pipetel/schemas"
)

// Dead-letter record headers (internal/deadletter defines them, for the
// publishers' dead letters too). The record keeps its original key and value.
const (
	HeaderError           = deadletter.HeaderError
	HeaderErrorCode       = deadletter.HeaderErrorCode
	HeaderSourceTopic     = deadletter.HeaderSourceTopic
	HeaderSourcePartition = deadletter.HeaderSourcePartition
	HeaderSourceOffset    = deadletter.HeaderSourceOffset
	// HeaderCut is set when the value was cut to fit the dead-letter
	// record bound (processor.dead_letter_max_bytes): it holds the
	// original value's length in bytes; the record keeps the first bytes.
	HeaderCut = deadletter.HeaderCut
	// HeaderKeyCut is HeaderCut for a key too long for the bound even
	// with an empty value.
	HeaderKeyCut = deadletter.HeaderKeyCut
)

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
	w        *deadletter.Writer
	m        *metrics
	maxBytes int
}

func newDeadLetters(cfg Config, m *metrics) *deadLetters {
	return &deadLetters{m: m, maxBytes: cfg.DeadLetterMaxBytes, w: deadletter.New(deadletter.Config{
		Brokers: cfg.Brokers, Topic: cfg.DeadLetterTopic, MaxBytes: cfg.DeadLetterMaxBytes, Attempts: 10, Transport: cfg.conn().Transport(),
	})}
}

// send writes the records, retrying the ones that failed; the counter
// moves only for records written.
func (d *deadLetters) send(ctx context.Context, invalid []decoded) error {
	msgs := make([]kafka.Message, len(invalid))
	for i, in := range invalid {
		msgs[i] = deadLetter(in, errorCode(in.err), d.maxBytes)
	}
	return d.w.Write(ctx, msgs, func(n int) { d.m.deadLetters.Add(float64(n)) })
}

// deadLetter builds the dead-letter record of an invalid record: its key,
// its value (cut to fit maxBytes with the headers, see HeaderCut) and
// headers naming the reason and the source.
func deadLetter(in decoded, code string, maxBytes int) kafka.Message {
	return deadletter.Fit(deadletter.Record(in.msg.Key, in.msg.Value, in.err.Error(),
		kafka.Header{Key: HeaderErrorCode, Value: []byte(code)},
		kafka.Header{Key: HeaderSourceTopic, Value: []byte(in.msg.Topic)},
		kafka.Header{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(in.msg.Partition))},
		kafka.Header{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(in.msg.Offset, 10))},
	), maxBytes)
}

func (d *deadLetters) close() { d.w.Close() }
