package delivery

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/internal/deadletter"
	"github.com/pipetel/pipetel/state"
)

// Headers of a dead-lettered metric (internal/deadletter defines them). The
// value is the metric's JSON, the key its task_id.
const (
	HeaderReason     = deadletter.HeaderError
	HeaderPublisher  = deadletter.HeaderPublisher
	HeaderMetricType = deadletter.HeaderMetricType
)

// KafkaDeadLetter writes rejected metrics to a Kafka topic.
type KafkaDeadLetter struct {
	w *deadletter.Writer
}

var _ DeadLetterer = (*KafkaDeadLetter)(nil)

// NewKafkaDeadLetter writes to topic on brokers with acks=all, once per
// call: a failed call leaves the metrics in the outbox, and the delivery
// retries them with its backoff. transport connects (TLS, SASL); nil:
// plaintext.
func NewKafkaDeadLetter(brokers []string, topic string, transport *kafka.Transport) *KafkaDeadLetter {
	return &KafkaDeadLetter{w: deadletter.New(deadletter.Config{Brokers: brokers, Topic: topic, Attempts: 1, Transport: transport})}
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
		msgs = append(msgs, deadletter.Record([]byte(key), data, reason.Error(),
			kafka.Header{Key: HeaderPublisher, Value: []byte(publisher)},
			kafka.Header{Key: HeaderMetricType, Value: []byte(typ)},
		))
	}
	return k.w.Write(ctx, msgs, nil)
}

// Close flushes and closes the writer.
func (k *KafkaDeadLetter) Close() error { return k.w.Close() }
