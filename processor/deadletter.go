package processor

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/schemas"
)

// Dead-letter record headers. The record keeps its original key and value.
const (
	HeaderError           = "pipetel-error"
	HeaderErrorCode       = "pipetel-error-code"
	HeaderSourceTopic     = "pipetel-source-topic"
	HeaderSourcePartition = "pipetel-source-partition"
	HeaderSourceOffset    = "pipetel-source-offset"
)

// deadLetters writes invalid records to the dead-letter topic before the
// batch that contained them is committed, so none is lost.
type deadLetters struct {
	w *kafka.Writer
	m *metrics
}

func newDeadLetters(cfg Config, m *metrics) *deadLetters {
	return &deadLetters{m: m, w: &kafka.Writer{
		Addr:                   kafka.TCP(cfg.Brokers...),
		Topic:                  cfg.DeadLetterTopic,
		Balancer:               &kafka.Murmur2Balancer{},
		RequiredAcks:           kafka.RequireAll,
		BatchTimeout:           5 * time.Millisecond,
		AllowAutoTopicCreation: true,
		Transport:              &kafka.Transport{},
	}}
}

func (d *deadLetters) send(ctx context.Context, invalid []decoded) error {
	msgs := make([]kafka.Message, len(invalid))
	for i, in := range invalid {
		code := ""
		if de, ok := in.err.(*schemas.DecodeError); ok {
			code = string(de.Code)
		}
		msgs[i] = kafka.Message{
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
	}
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := d.w.WriteMessages(ctx, msgs...)
		if err == nil {
			d.m.deadLetters.Add(float64(len(msgs)))
			return nil
		}
		if attempt == 10 || ctx.Err() != nil {
			return fmt.Errorf("cannot write %d records to dead-letter topic %q: %w", len(msgs), d.w.Topic, err)
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (d *deadLetters) close() { d.w.Close() }
