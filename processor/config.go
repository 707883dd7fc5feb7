package processor

import (
	"fmt"
	"github.com/pipetel/pipetel/internal/kafkaconn"
	"time"

	"github.com/pipetel/pipetel/schemas"
)

// Config configures the processor. The zero value of every field means its
// documented default; call WithDefaults then Validate.
type Config struct {
	// Brokers are the bootstrap addresses (host:port). Required.
	Brokers []string `yaml:"brokers"`
	// GroupID is the consumer group. Default "pipetel".
	GroupID string `yaml:"group_id"`
	// EventsTopic and NetworkTopic are the input topics. Defaults
	// "pipetel.events" and "pipetel.network".
	EventsTopic  string `yaml:"events_topic"`
	NetworkTopic string `yaml:"network_topic"`
	// DeadLetterTopic receives invalid records with their reason in
	// headers. Default "pipetel.deadletter".
	DeadLetterTopic string `yaml:"dead_letter_topic"`
	// CreateTopics creates missing topics at start-up with Partitions
	// partitions and ReplicationFactor replicas. Default false.
	CreateTopics      bool `yaml:"create_topics"`
	Partitions        int  `yaml:"partitions"`
	ReplicationFactor int  `yaml:"replication_factor"`
	// ChangelogReplicationFactor is the changelog topics' replication
	// factor when pipetel creates them (their min.insync.replicas is 2
	// from 3 replicas up, else 1). Default: replication_factor. The
	// changelog is the state: give it the cluster's usual 3.
	ChangelogReplicationFactor int `yaml:"changelog_replication_factor"`
	// MaxRecordBytes rejects larger record values. Default 65536.
	MaxRecordBytes int `yaml:"max_record_bytes"`
	// DeadLetterMaxBytes bounds one dead-letter record (key, value and
	// headers). A larger invalid record keeps its key and headers and the
	// first bytes of its value, with a pipetel-cut header giving the
	// original length. Default 1000000, under Kafka's default
	// message.max.bytes (1048588); raise both together.
	DeadLetterMaxBytes int `yaml:"dead_letter_max_bytes"`
	// BatchSize is the most records applied in one state transaction.
	// Default 5000: a batch is also the unit of deferred pending writes,
	// so a task that opens and finishes within one never reaches the disk.
	BatchSize int `yaml:"batch_size"`
	// BatchBytes ends a batch once its record values reach this many
	// bytes, so large records cannot make a batch of BatchSize of them
	// hold hundreds of megabytes. Default 4 MiB.
	BatchBytes int `yaml:"batch_bytes"`
	// BatchWait is how long a partition waits to fill a batch once it has a
	// record. Default 20ms.
	BatchWait time.Duration `yaml:"batch_wait"`
	// CommitInterval is the least time between two offset commits of a
	// partition. Default 1s. The state's own offset makes a late commit
	// harmless: it only means more records are skipped on restart.
	CommitInterval time.Duration `yaml:"commit_interval"`
	// SessionTimeout, HeartbeatInterval and RebalanceTimeout tune the
	// group. Defaults 10s, 1s, 10s.
	SessionTimeout    time.Duration `yaml:"session_timeout"`
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	RebalanceTimeout  time.Duration `yaml:"rebalance_timeout"`
	// MaxOutboxDepth pauses fetching while any publisher's outbox holds
	// more finished metrics than this. Default 1000000.
	MaxOutboxDepth int64 `yaml:"max_outbox_depth"`
	// DisableChangelog turns off the compacted changelog topics that make
	// a partition's state movable between instances. Default false: on.
	DisableChangelog bool `yaml:"disable_changelog"`
	// AdvertiseHTTP is the address (host:port) other instances use to reach
	// this instance's query API; it travels in the group's member metadata.
	// Default: the HTTP listen address.
	AdvertiseHTTP string `yaml:"advertise_http"`
	// TaskTimeout finishes an event with a start but no end as timed_out
	// this long (in record time) after its start. Default 1h.
	TaskTimeout time.Duration `yaml:"task_timeout"`
	// TaskTimeouts overrides TaskTimeout per event name.
	TaskTimeouts map[string]time.Duration `yaml:"task_timeouts"`
	// OperationTimeout is TaskTimeout for network operations. Default 1h.
	OperationTimeout time.Duration `yaml:"operation_timeout"`
	// OrphanGrace finishes an entry that has an end (or retries) but no
	// start as orphan this long after its first record. Default 10m.
	OrphanGrace time.Duration `yaml:"orphan_grace"`
	// IdleTimeAdvance: once a partition has had no record for this long,
	// its stream time follows the wall clock, so open tasks expire even
	// when traffic stops. Default 10s.
	IdleTimeAdvance time.Duration `yaml:"idle_time_advance"`
	// MaxOpenTasks caps the open tasks (and, separately, open network
	// operations) per partition. Default 1000000.
	MaxOpenTasks int64 `yaml:"max_open_tasks"`
	// OpenTaskPolicy is what happens at the cap: expire_oldest (default)
	// finishes the entries closest to their deadline early, as timed_out or
	// orphan; pause stops fetching the partition until expiry frees room.
	OpenTaskPolicy string `yaml:"open_task_policy"`
	// RetentionInterval is how often each partition removes finished
	// metrics older than the store's retention. Default 1m.
	RetentionInterval time.Duration `yaml:"retention_interval"`

	// Now is the wall clock: it bounds how far ahead of it a record's time
	// can move stream time. Nil means time.Now; tests inject their own.
	Now func() time.Time `yaml:"-"`
	// Conn is how every Kafka client of the processor connects (TLS,
	// SASL): the app builds it from the configuration's kafka block. Nil:
	// plaintext without authentication.
	Conn *kafkaconn.Conn `yaml:"-"`
}

func (c Config) wallClock() func() time.Time {
	if c.Now != nil {
		return c.Now
	}
	return time.Now
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&c.GroupID, "pipetel")
	def(&c.EventsTopic, schemas.DefaultEventsTopic)
	def(&c.NetworkTopic, schemas.DefaultNetworkTopic)
	def(&c.DeadLetterTopic, "pipetel.deadletter")
	defInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	defInt(&c.Partitions, 8)
	defInt(&c.ReplicationFactor, 1)
	defInt(&c.ChangelogReplicationFactor, c.ReplicationFactor)
	defInt(&c.MaxRecordBytes, schemas.DefaultMaxRecordBytes)
	defInt(&c.DeadLetterMaxBytes, 1_000_000)
	defInt(&c.BatchSize, 5000)
	defInt(&c.BatchBytes, 4<<20)
	defDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	defDur(&c.BatchWait, 20*time.Millisecond)
	defDur(&c.CommitInterval, time.Second)
	defDur(&c.SessionTimeout, 10*time.Second)
	defDur(&c.HeartbeatInterval, time.Second)
	defDur(&c.RebalanceTimeout, 10*time.Second)
	defDur(&c.RetentionInterval, time.Minute)
	defDur(&c.TaskTimeout, time.Hour)
	defDur(&c.OperationTimeout, time.Hour)
	defDur(&c.OrphanGrace, 10*time.Minute)
	defDur(&c.IdleTimeAdvance, 10*time.Second)
	if c.MaxOpenTasks == 0 {
		c.MaxOpenTasks = 1_000_000
	}
	def(&c.OpenTaskPolicy, PolicyExpireOldest)
	if c.MaxOutboxDepth == 0 {
		c.MaxOutboxDepth = 1_000_000
	}
	return c
}

// Validate reports the first invalid field, naming it, its value and what
// is allowed. Call it after WithDefaults.
func (c Config) Validate() error {
	if len(c.Brokers) == 0 {
		return fmt.Errorf("processor.brokers: got [], expected at least one host:port address")
	}
	if c.EventsTopic == c.NetworkTopic {
		return fmt.Errorf("processor.network_topic: got %q, expected a topic other than events_topic", c.NetworkTopic)
	}
	checks := []struct {
		field string
		bad   bool
		value any
		want  string
	}{
		{"processor.partitions", c.Partitions < 1, c.Partitions, "an integer >= 1"},
		{"processor.replication_factor", c.ReplicationFactor < 1, c.ReplicationFactor, "an integer >= 1"},
		{"processor.changelog_replication_factor", c.ChangelogReplicationFactor < 1, c.ChangelogReplicationFactor, "an integer >= 1"},
		{"processor.max_record_bytes", c.MaxRecordBytes < 64, c.MaxRecordBytes, "an integer >= 64"},
		{"processor.dead_letter_max_bytes", c.DeadLetterMaxBytes < 4096, c.DeadLetterMaxBytes, "a number of bytes >= 4096"},
		{"processor.batch_size", c.BatchSize < 1 || c.BatchSize > 10000, c.BatchSize, "an integer 1..10000"},
		{"processor.batch_bytes", c.BatchBytes < 1, c.BatchBytes, "a number of bytes > 0"},
		{"processor.batch_wait", c.BatchWait < 0, c.BatchWait, "a duration >= 0"},
		{"processor.commit_interval", c.CommitInterval < 0, c.CommitInterval, "a duration >= 0"},
		{"processor.heartbeat_interval", c.HeartbeatInterval <= 0 || c.HeartbeatInterval >= c.SessionTimeout, c.HeartbeatInterval, "a duration > 0 and below session_timeout"},
		{"processor.rebalance_timeout", c.RebalanceTimeout <= 0, c.RebalanceTimeout, "a duration > 0"},
		{"processor.max_outbox_depth", c.MaxOutboxDepth < 1, c.MaxOutboxDepth, "an integer >= 1"},
		{"processor.retention_interval", c.RetentionInterval <= 0, c.RetentionInterval, "a duration > 0"},
		{"processor.task_timeout", c.TaskTimeout <= 0, c.TaskTimeout, "a duration > 0"},
		{"processor.operation_timeout", c.OperationTimeout <= 0, c.OperationTimeout, "a duration > 0"},
		{"processor.orphan_grace", c.OrphanGrace <= 0, c.OrphanGrace, "a duration > 0"},
		{"processor.idle_time_advance", c.IdleTimeAdvance <= 0, c.IdleTimeAdvance, "a duration > 0"},
		{"processor.max_open_tasks", c.MaxOpenTasks < 1, c.MaxOpenTasks, "an integer >= 1"},
		{"processor.open_task_policy", c.OpenTaskPolicy != PolicyExpireOldest && c.OpenTaskPolicy != PolicyPause, c.OpenTaskPolicy, "expire_oldest or pause"},
	}
	for name, d := range c.TaskTimeouts {
		if d <= 0 {
			return fmt.Errorf("processor.task_timeouts[%q]: got %v, expected a duration > 0", name, d)
		}
	}
	for _, ch := range checks {
		if ch.bad {
			return fmt.Errorf("%s: got %v, expected %s", ch.field, ch.value, ch.want)
		}
	}
	return nil
}

// conn is Conn, plaintext when unset.
func (c Config) conn() *kafkaconn.Conn {
	if c.Conn == nil {
		return kafkaconn.Plain
	}
	return c.Conn
}
