package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/state"
)

// Headers of a dead-lettered metric. The value is the metric's JSON, the key
// its task_id.
const (
	HeaderReason     = "pipetel-error"
	HeaderPublisher  = "pipetel-publisher"
	HeaderMetricType = "pipetel-metric-type"
)

// KafkaDeadLetter writes rejected metrics to a Kafka topic.
type KafkaDeadLetter struct {
	w *kafka.Writer
}

var _ DeadLetterer = (*KafkaDeadLetter)(nil)

// NewKafkaDeadLetter writes to topic on brokers with acks=all.
func NewKafkaDeadLetter(brokers []string, topic string) *KafkaDeadLetter {
	return &KafkaDeadLetter{w: &kafka.Writer{
		Addr: kafka.TCP(brokers...), Topic: topic, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond,
		AllowAutoTopicCreation: true, Transport: &kafka.Transport{},
	}}
}

// DeadLetter writes items with the reason in headers.
func (k *KafkaDeadLetter) DeadLetter(ctx context.Context, publisher string, items []state.OutboxItem, reason error) error {
	msgs := make([]kafka.Message, 0, len(items))
	for _, it := range items {
		var v any = it.Event
		typ, key := "event", ""
		if it.Event != nil {
			key = it.Event.TaskID
		} else {
			v, typ, key = it.Network, "network", it.Network.TaskID
		}
		data, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("cannot encode dead letter of %q: %w", key, err)
		}
		msgs = append(msgs, kafka.Message{Key: []byte(key), Value: data, Headers: []kafka.Header{
			{Key: HeaderReason, Value: []byte(reason.Error())},
			{Key: HeaderPublisher, Value: []byte(publisher)},
			{Key: HeaderMetricType, Value: []byte(typ)},
		}})
	}
	if err := k.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("cannot write %d dead letters to %q: %w", len(msgs), k.w.Topic, err)
	}
	return nil
}

// Close flushes and closes the writer.
func (k *KafkaDeadLetter) Close() error { return k.w.Close() }
