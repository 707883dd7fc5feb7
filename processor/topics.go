package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/internal/backoff"
)

// errTopicNotVisible is wrapped when a topic that should exist (created by
// this instance or another) is not in the broker's metadata yet.
var errTopicNotVisible = errors.New("topic not visible yet")

// topicSetupDeadline bounds how long set-up retries while topics that
// instances starting at the same moment create become visible.
const topicSetupDeadline = 60 * time.Second

// retryableSetup reports whether a topic set-up error can heal by itself:
// a topic another instance just created that this broker does not show yet,
// or a partition without a leader for a moment.
func retryableSetup(err error) bool {
	return errors.Is(err, errTopicNotVisible) || errors.Is(err, kafka.UnknownTopicOrPartition) ||
		errors.Is(err, kafka.LeaderNotAvailable) || errors.Is(err, kafka.NotController) ||
		errors.Is(err, kafka.RequestTimedOut)
}

// setupWithRetry runs step until it succeeds, fails for good, or the set-up
// deadline passes, waiting a little longer after each retryable failure.
func setupWithRetry(ctx context.Context, log *slog.Logger, what string, step func(context.Context) error) error {
	deadline := time.Now().Add(topicSetupDeadline)
	b := backoff.New(100*time.Millisecond, 2*time.Second, backoff.None)
	for attempt := 1; ; attempt++ {
		err := step(ctx)
		if err == nil || !retryableSetup(err) || ctx.Err() != nil {
			return err
		}
		wait := b.Next()
		if time.Now().Add(wait).After(deadline) {
			return err
		}
		log.Info("topics not ready; retrying", "step", what, "attempt", attempt, "retry_in", wait, "err", err)
		if !backoff.Wait(ctx, wait) {
			return err
		}
	}
}

// ensureTopics creates the input and dead-letter topics that do not exist.
func ensureTopics(ctx context.Context, cfg Config) error {
	client := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Transport: cfg.conn().Transport()}
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
