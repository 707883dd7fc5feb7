package processor

import (
	"context"
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"
)

// ensureTopics creates the input and dead-letter topics that do not exist.
func ensureTopics(ctx context.Context, cfg Config) error {
	client := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Transport: &kafka.Transport{}}
	var req kafka.CreateTopicsRequest
	for _, t := range []string{cfg.EventsTopic, cfg.NetworkTopic, cfg.DeadLetterTopic} {
		req.Topics = append(req.Topics, kafka.TopicConfig{Topic: t, NumPartitions: cfg.Partitions, ReplicationFactor: cfg.ReplicationFactor})
	}
	resp, err := client.CreateTopics(ctx, &req)
	if err != nil {
		return fmt.Errorf("cannot create topics on %q: %w", cfg.Brokers, err)
	}
	for topic, err := range resp.Errors {
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			return fmt.Errorf("cannot create topic %q: %w", topic, err)
		}
	}
	return nil
}
