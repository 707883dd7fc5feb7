package processor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/state"
)

// changelogMaxBytes is the changelog topic's max.message.bytes: a batch's
// changes go in one record batch, so that a batch is in the log entirely or
// not at all.
const changelogMaxBytes = 32 << 20

// changelog writes each unit's committed changes to its partition of a
// compacted topic, one per input topic, and reads them back on restore.
type Changelog struct {
	client *kafka.Client
	topics map[state.Stream]string
	cfg    Config

	mu     sync.Mutex // a leaf: guards owners
	owners map[state.Unit]*ownership
}

// ownership is this instance's claim on a unit's changelog, from its fence
// on: the epoch every record it appends carries, where its next append
// should land, and the records of another writer found in between.
type ownership struct {
	epoch   int64
	next    int64    // offset the next append should start at
	foreign [2]int64 // [from, to) of records another writer appended; from == to: none
}

var _ state.Changelog = (*Changelog)(nil)

// changelogTopic names the changelog of an input topic.
func changelogTopic(group, input string) string { return group + "-" + input + "-changelog" }

func newChangelog(cfg Config) *Changelog {
	return &Changelog{
		client: &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Transport: cfg.conn().Transport(), Timeout: 30 * time.Second},
		topics: map[state.Stream]string{
			state.Events:  changelogTopic(cfg.GroupID, cfg.EventsTopic),
			state.Network: changelogTopic(cfg.GroupID, cfg.NetworkTopic),
		},
		cfg:    cfg,
		owners: map[state.Unit]*ownership{},
	}
}

// Append writes the changes as one record batch with acks=all, each record
// carrying this instance's epoch for the unit.
func (c *Changelog) Append(ctx context.Context, u state.Unit, changes []state.Change) (int64, error) {
	recs := make([]kafka.Record, len(changes))
	now := time.Now()
	epoch := epochHeader(c.epochOf(u))
	for i, ch := range changes {
		recs[i] = kafka.Record{Time: now, Key: kafka.NewBytes(ch.Key), Headers: epoch}
		if !ch.Delete {
			recs[i].Value = kafka.NewBytes(encodeChangeValue(ch.Value))
		}
	}
	last, err := c.produce(ctx, u, recs)
	if err != nil {
		return 0, err
	}
	c.noteAppend(u, last-int64(len(recs))+1, last)
	return last, nil
}

// produce writes recs to the unit's changelog partition as one record
// batch and returns the offset of the last one.
func (c *Changelog) produce(ctx context.Context, u state.Unit, recs []kafka.Record) (int64, error) {
	topic := c.topics[u.Stream]
	resp, err := c.client.Produce(ctx, &kafka.ProduceRequest{
		Topic: topic, Partition: int(u.Partition), RequiredAcks: kafka.RequireAll,
		Records: kafka.NewRecordReader(recs...), Compression: kafka.Lz4,
	})
	if err == nil && resp.Error != nil {
		err = resp.Error
	}
	if err != nil {
		return 0, fmt.Errorf("cannot append %d changes to changelog %q partition %d: %w", len(recs), topic, u.Partition, err)
	}
	return resp.BaseOffset + int64(len(recs)) - 1, nil
}

// end returns the offset after the last record of a changelog partition.
func (c *Changelog) end(ctx context.Context, u state.Unit) (int64, error) {
	topic := c.topics[u.Stream]
	resp, err := c.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(int(u.Partition))}}})
	if err != nil {
		return 0, fmt.Errorf("cannot read end of changelog %q partition %d: %w", topic, u.Partition, err)
	}
	for _, po := range resp.Topics[topic] {
		if po.Partition == int(u.Partition) {
			if po.Error != nil {
				return 0, fmt.Errorf("cannot read end of changelog %q partition %d: %w", topic, u.Partition, po.Error)
			}
			return po.LastOffset, nil
		}
	}
	return 0, fmt.Errorf("cannot read end of changelog %q partition %d: not in the answer", topic, u.Partition)
}

// minInsync is the changelog topics' min.insync.replicas for a
// replication factor: 2 from three replicas up (one broker may be down
// without stopping appends), else 1.
func minInsync(replication int) int {
	if replication >= 3 {
		return 2
	}
	return 1
}

// ensure creates the changelog topics that are missing, compacted, with the
// input topics' partition counts, and checks the ones that exist.
func (c *Changelog) ensure(ctx context.Context) error {
	inputs := []string{c.cfg.EventsTopic, c.cfg.NetworkTopic}
	meta, err := c.client.Metadata(ctx, &kafka.MetadataRequest{Topics: append(inputs, c.topics[state.Events], c.topics[state.Network])})
	if err != nil {
		return fmt.Errorf("cannot read topic metadata: %w", err)
	}
	parts := map[string]int{}
	for _, t := range meta.Topics {
		if t.Error == nil {
			parts[t.Name] = len(t.Partitions)
		}
	}
	var create kafka.CreateTopicsRequest
	for _, st := range []state.Stream{state.Events, state.Network} {
		input, log := inputs[0], c.topics[st]
		if st == state.Network {
			input = inputs[1]
		}
		want, ok := parts[input]
		if !ok {
			err := fmt.Errorf("cannot size changelog %q: input topic %q does not exist", log, input)
			if c.cfg.CreateTopics {
				err = fmt.Errorf("%w (%w)", err, errTopicNotVisible) // just created: not visible yet
			}
			return err
		}
		if have, ok := parts[log]; ok {
			if have != want {
				return fmt.Errorf("changelog topic %q: got %d partitions, expected %d like input topic %q", log, have, want, input)
			}
			continue
		}
		create.Topics = append(create.Topics, kafka.TopicConfig{
			Topic: log, NumPartitions: want, ReplicationFactor: c.cfg.ChangelogReplicationFactor,
			ConfigEntries: []kafka.ConfigEntry{
				{ConfigName: "cleanup.policy", ConfigValue: "compact"},
				{ConfigName: "max.message.bytes", ConfigValue: fmt.Sprint(changelogMaxBytes)},
				// acks=all then means written to more than the leader alone
				// once there are replicas to write to.
				{ConfigName: "min.insync.replicas", ConfigValue: fmt.Sprint(minInsync(c.cfg.ChangelogReplicationFactor))},
			},
		})
	}
	if len(create.Topics) > 0 {
		resp, err := c.client.CreateTopics(ctx, &create)
		if err != nil {
			return fmt.Errorf("cannot create changelog topics: %w", err)
		}
		for topic, err := range resp.Errors {
			if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
				return fmt.Errorf("cannot create changelog topic %q: %w", topic, err)
			}
		}
	}
	return c.checkCompacted(ctx)
}

// checkCompacted verifies cleanup.policy of both changelogs: a deleting
// policy would lose state once retention passes.
func (c *Changelog) checkCompacted(ctx context.Context) error {
	var req kafka.DescribeConfigsRequest
	for _, t := range c.topics {
		req.Resources = append(req.Resources, kafka.DescribeConfigRequestResource{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: t, ConfigNames: []string{"cleanup.policy"},
		})
	}
	resp, err := c.client.DescribeConfigs(ctx, &req)
	if err != nil {
		return fmt.Errorf("cannot describe changelog topics: %w", err)
	}
	for _, r := range resp.Resources {
		if r.Error != nil {
			return fmt.Errorf("cannot describe changelog topic %q: %w", r.ResourceName, r.Error)
		}
		for _, e := range r.ConfigEntries {
			if e.ConfigName == "cleanup.policy" && !strings.Contains(e.ConfigValue, "compact") {
				return fmt.Errorf("changelog topic %q: cleanup.policy is %q, expected compact", r.ResourceName, e.ConfigValue)
			}
		}
	}
	return nil
}

// A set is logged as 's' followed by the value, so that an empty value (the
// indexes have them) is never mistaken for a tombstone; a delete is a
// tombstone, which compaction eventually removes.
func encodeChangeValue(v []byte) []byte {
	return append([]byte{'s'}, v...)
}

// decodeChange is the inverse of Append's encoding for one record.
func decodeChange(key, value []byte) (state.Change, error) {
	if len(value) == 0 {
		return state.Change{Key: key, Delete: true}, nil
	}
	if value[0] != 's' {
		return state.Change{}, fmt.Errorf("cannot decode changelog record of key %q: value starts with %q, expected 's'", key, value[0])
	}
	return state.Change{Key: key, Value: value[1:]}, nil
}
