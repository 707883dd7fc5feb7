package processor

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/internal/testbroker"
)

// TestChangelogTopicConfig: changelog topics are created compacted, with
// room for one batch's append, and with min.insync.replicas fit for their
// replication factor.
func TestChangelogTopicConfig(t *testing.T) {
	f := func(rf, want int) {
		t.Helper()
		if got := minInsync(rf); got != want {
			t.Errorf("minInsync(%d) = %d, want %d", rf, got, want)
		}
	}
	f(1, 1)
	f(2, 1)
	f(3, 2)
	f(5, 2)

	b := testbroker.Start(t)
	cfg := Config{Brokers: b.Addrs, GroupID: testbroker.Name(t, "group"), EventsTopic: testbroker.Name(t, "events"),
		NetworkTopic: testbroker.Name(t, "network"), DeadLetterTopic: testbroker.Name(t, "dead"), Partitions: 2, CreateTopics: true}.WithDefaults()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	if err := setupWithRetry(ctx, log, "topics", func(ctx context.Context) error { return ensureTopics(ctx, cfg) }); err != nil {
		t.Fatal(err)
	}
	cl := newChangelog(cfg)
	if err := setupWithRetry(ctx, log, "changelog", cl.ensure); err != nil {
		t.Fatal(err)
	}
	topic := changelogTopic(cfg.GroupID, cfg.EventsTopic)
	c := &kafka.Client{Addr: kafka.TCP(b.Addrs...), Transport: &kafka.Transport{}, Timeout: 10 * time.Second}
	resp, err := c.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic,
		ConfigNames: []string{"cleanup.policy", "min.insync.replicas", "max.message.bytes"},
	}}})
	if err != nil || len(resp.Resources) != 1 || resp.Resources[0].Error != nil {
		t.Fatalf("describe %s: %v %+v", topic, err, resp)
	}
	got := map[string]string{}
	for _, e := range resp.Resources[0].ConfigEntries {
		got[e.ConfigName] = e.ConfigValue
	}
	want := map[string]string{"cleanup.policy": "compact", "min.insync.replicas": "1", "max.message.bytes": fmt.Sprint(changelogMaxBytes)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("changelog topic config %v, want %v", got, want)
	}
}
