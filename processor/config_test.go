package processor

import (
	"reflect"
	"testing"
	"time"
)

func TestConfigWithDefaults(t *testing.T) {
	got := Config{Brokers: []string{"127.0.0.1:9092"}}.WithDefaults()
	want := Config{
		Brokers:            []string{"127.0.0.1:9092"},
		GroupID:            "pipetel",
		EventsTopic:        "pipetel.events",
		NetworkTopic:       "pipetel.network",
		DeadLetterTopic:    "pipetel.deadletter",
		CreateTopics:       false,
		Partitions:         8,
		ReplicationFactor:  1,
		MaxRecordBytes:     65536,
		DeadLetterMaxBytes: 1_000_000, ChangelogReplicationFactor: 1,
		BatchSize:         5000,
		BatchBytes:        4 << 20,
		BatchWait:         20 * time.Millisecond,
		CommitInterval:    time.Second,
		SessionTimeout:    10 * time.Second,
		HeartbeatInterval: time.Second,
		RebalanceTimeout:  10 * time.Second,
		MaxOutboxDepth:    1_000_000,
		RetentionInterval: time.Minute,
		TaskTimeout:       time.Hour,
		OperationTimeout:  time.Hour,
		OrphanGrace:       10 * time.Minute,
		IdleTimeAdvance:   10 * time.Second,
		MaxOpenTasks:      1_000_000,
		OpenTaskPolicy:    PolicyExpireOldest,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("WithDefaults:\n got %+v\nwant %+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}

	// Set fields are kept.
	set := Config{Brokers: []string{"b:1"}, GroupID: "g", BatchSize: 5, BatchWait: time.Millisecond, MaxOutboxDepth: 7}.WithDefaults()
	if set.GroupID != "g" || set.BatchSize != 5 || set.BatchWait != time.Millisecond || set.MaxOutboxDepth != 7 {
		t.Fatalf("WithDefaults replaced set fields: %+v", set)
	}
}

func TestConfigValidate(t *testing.T) {
	f := func(name string, edit func(*Config), want string) {
		t.Helper()
		c := Config{Brokers: []string{"127.0.0.1:9092"}}
		edit(&c)
		err := c.WithDefaults().Validate()
		if err == nil || err.Error() != want {
			t.Errorf("%s: Validate() = %v, want %q", name, err, want)
		}
	}
	f("no brokers", func(c *Config) { c.Brokers = nil },
		"processor.brokers: got [], expected at least one host:port address")
	f("same topics", func(c *Config) { c.EventsTopic, c.NetworkTopic = "in", "in" },
		`processor.network_topic: got "in", expected a topic other than events_topic`)
	f("network topic equal to the default events topic", func(c *Config) { c.NetworkTopic = "pipetel.events" },
		`processor.network_topic: got "pipetel.events", expected a topic other than events_topic`)
	// A zero batch size means the default; too large is an error.
	f("batch size too large", func(c *Config) { c.BatchSize = 20000 },
		"processor.batch_size: got 20000, expected an integer 1..10000")
	f("negative batch size", func(c *Config) { c.BatchSize = -1 },
		"processor.batch_size: got -1, expected an integer 1..10000")
	f("negative batch bytes", func(c *Config) { c.BatchBytes = -1 },
		"processor.batch_bytes: got -1, expected a number of bytes > 0")
	f("heartbeat equal to session", func(c *Config) { c.HeartbeatInterval, c.SessionTimeout = 10*time.Second, 10*time.Second },
		"processor.heartbeat_interval: got 10s, expected a duration > 0 and below session_timeout")
	f("heartbeat above session", func(c *Config) { c.HeartbeatInterval, c.SessionTimeout = 3*time.Second, 2*time.Second },
		"processor.heartbeat_interval: got 3s, expected a duration > 0 and below session_timeout")
	f("negative batch wait", func(c *Config) { c.BatchWait = -time.Second },
		"processor.batch_wait: got -1s, expected a duration >= 0")
	f("tiny max record bytes", func(c *Config) { c.MaxRecordBytes = 10 },
		"processor.max_record_bytes: got 10, expected an integer >= 64")
	f("tiny dead-letter bound", func(c *Config) { c.DeadLetterMaxBytes = 100 },
		"processor.dead_letter_max_bytes: got 100, expected a number of bytes >= 4096")
	f("negative partitions", func(c *Config) { c.Partitions = -1 },
		"processor.partitions: got -1, expected an integer >= 1")
	f("negative max outbox depth", func(c *Config) { c.MaxOutboxDepth = -5 },
		"processor.max_outbox_depth: got -5, expected an integer >= 1")
	f("negative retention interval", func(c *Config) { c.RetentionInterval = -time.Minute },
		"processor.retention_interval: got -1m0s, expected a duration > 0")
}
