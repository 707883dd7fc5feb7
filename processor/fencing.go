package processor

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/state"
)

// Fencing of stale owners.
//
// Kafka cannot refuse a produce from an instance that lost its partition
// (without transactions, which kafka-go lacks): an instance paused past its
// session (GC, a frozen VM) can still append to a changelog that the new
// owner already restored from. Three things keep such a late append from
// reaching anyone's state:
//
//  1. Every changelog record carries its writer's epoch (header
//     pipetel-epoch). An owner's epoch is its group generation, raised above
//     the epoch of the log's last record, so it is higher than every earlier
//     writer's.
//  2. A new owner first appends a fence record with its epoch, then
//     restores up to the fence. A restore skips every record whose epoch is
//     lower than one it has already read: a late append lands after a higher
//     epoch, so it is skipped.
//  3. The owner notices another writer's records when its own append does
//     not land where its previous one ended, and appends its own values of
//     the keys they touched after them (state.Store.Relog), so that
//     compaction, which keeps the last record of a key, keeps the owner's.
//     Seeing a higher epoch there instead means this instance is the stale
//     one: it stops the partition.

// headerEpoch names the header with a changelog record's writer's epoch.
const headerEpoch = "pipetel-epoch"

// ErrFenced is returned when a newer owner's records are in the changelog
// of a unit this instance still writes: it lost the partition.
var ErrFenced = errors.New("another instance owns this partition now (its changelog holds a newer epoch)")

// fenceKey is the changelog key of a unit's fence records: outside every
// unit's state (no state key starts with '!'), one key per unit, so that
// compaction keeps the latest fence only.
func fenceKey(u state.Unit) []byte {
	return []byte(fmt.Sprintf("!fence/%s/%d", u.Stream, u.Partition))
}

func isFence(key []byte) bool { return bytes.HasPrefix(key, []byte("!fence/")) }

func epochHeader(epoch int64) []kafka.Header {
	return []kafka.Header{{Key: headerEpoch, Value: binary.BigEndian.AppendUint64(nil, uint64(epoch))}}
}

// epochOf reads a record's epoch; records written before epochs existed
// have none and count as 0.
func epochOf(headers []kafka.Header) int64 {
	for _, h := range headers {
		if h.Key == headerEpoch && len(h.Value) == 8 {
			return int64(binary.BigEndian.Uint64(h.Value))
		}
	}
	return 0
}

func (c *Changelog) epochOf(u state.Unit) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if o := c.owners[u]; o != nil {
		return o.epoch
	}
	return 0
}

// noteAppend records where this instance's append landed and, when it
// did not land where the previous one ended, the records in between.
func (c *Changelog) noteAppend(u state.Unit, base, last int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o := c.owners[u]
	if o == nil {
		return
	}
	if base > o.next {
		if o.foreign[0] == o.foreign[1] {
			o.foreign = [2]int64{o.next, base}
		} else {
			o.foreign[1] = base // widen: repaired together
		}
	}
	o.next = last + 1
}

// takeForeign returns and forgets the range of another writer's records.
func (c *Changelog) takeForeign(u state.Unit) (from, to int64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o := c.owners[u]
	if o == nil || o.foreign[0] == o.foreign[1] {
		return 0, 0, false
	}
	from, to = o.foreign[0], o.foreign[1]
	o.foreign = [2]int64{}
	return from, to, true
}

// keepForeign puts back a range takeForeign returned, to be repaired later.
func (c *Changelog) keepForeign(u state.Unit, from, to int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if o := c.owners[u]; o != nil {
		if o.foreign[0] == o.foreign[1] {
			o.foreign = [2]int64{from, to}
		} else {
			o.foreign = [2]int64{min(from, o.foreign[0]), max(to, o.foreign[1])}
		}
	}
}

// release forgets this instance's claim on a unit.
func (c *Changelog) release(u state.Unit) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.owners, u)
}

// fence claims the unit's changelog for generation: it appends a fence
// record with an epoch above the log's last record's and returns the
// fence's offset. end is the log's end before the fence.
func (c *Changelog) fence(ctx context.Context, u state.Unit, generation int64, end int64) (int64, error) {
	epoch := generation
	if end > 0 {
		recs, err := c.read(ctx, u, end-1, end)
		if err != nil {
			return 0, err
		}
		for _, m := range recs {
			epoch = max(epoch, epochOf(m.Headers)+1)
		}
	}
	c.mu.Lock()
	c.owners[u] = &ownership{epoch: epoch, next: -1}
	c.mu.Unlock()
	off, err := c.produce(ctx, u, []kafka.Record{{Time: time.Now(), Key: kafka.NewBytes(fenceKey(u)),
		Value: kafka.NewBytes([]byte("f")), Headers: epochHeader(epoch)}})
	if err != nil {
		c.release(u)
		return 0, err
	}
	c.mu.Lock()
	c.owners[u].next = off + 1
	c.mu.Unlock()
	return off, nil
}

// read returns the unit's changelog records in [from, to).
func (c *Changelog) read(ctx context.Context, u state.Unit, from, to int64) ([]kafka.Message, error) {
	topic := c.topics[u.Stream]
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: c.cfg.Brokers, Dialer: c.cfg.conn().Dialer(), Topic: topic, Partition: int(u.Partition),
		MinBytes: 1, MaxBytes: 2 * changelogMaxBytes, MaxWait: 500 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(from); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var out []kafka.Message
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return nil, fmt.Errorf("cannot read changelog %q partition %d at offsets %d..%d: %w", topic, u.Partition, from, to-1, err)
		}
		if m.Offset >= to {
			return out, nil
		}
		out = append(out, m)
		if m.Offset == to-1 {
			return out, nil
		}
	}
}

// repairForeign deals with records another writer appended to the unit's
// changelog since this instance's last append: records of a newer owner
// mean this instance is stale (ErrFenced); records of an older one are
// superseded by appending this instance's values of their keys.
func (c *partitionConsumer) repairForeign(ctx context.Context) error {
	log := c.p.changelog
	if log == nil {
		return nil
	}
	from, to, ok := log.takeForeign(c.unit)
	if !ok {
		return nil
	}
	recs, err := log.read(ctx, c.unit, from, to)
	if err != nil {
		log.keepForeign(c.unit, from, to) // restores skip them meanwhile; retried after the next batch
		c.p.log.Warn("cannot read a stale owner's changelog records; retrying after the next batch", "topic", c.topic, "partition", c.unit.Partition, "err", err)
		return nil
	}
	own := log.epochOf(c.unit)
	var keys [][]byte
	for _, m := range recs {
		if e := epochOf(m.Headers); e > own || (e == own && isFence(m.Key)) {
			// This instance's last changes are in its state but, after a
			// newer fence, skipped by every restore: never current again.
			if err := c.p.store.Unmark(c.unit); err != nil {
				return err
			}
			return fmt.Errorf("changelog %q partition %d offset %d has epoch %d, this instance's is %d: %w",
				log.topics[c.unit.Stream], c.unit.Partition, m.Offset, e, own, ErrFenced)
		}
		if !isFence(m.Key) {
			keys = append(keys, m.Key)
		}
	}
	c.p.m.foreign.WithLabelValues(c.topic).Add(float64(len(recs)))
	c.p.log.Warn("the changelog has records of a stale owner after this instance's fence; logging this instance's values of their keys after them",
		"topic", c.topic, "partition", c.unit.Partition, "from_offset", from, "to_offset", to-1, "keys", len(keys))
	return c.p.store.Relog(ctx, c.unit, keys)
}
