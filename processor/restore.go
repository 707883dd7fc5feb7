package processor

import (
	"context"
	"time"

	"github.com/segmentio/kafka-go"
)

// prepareState makes the unit's local state equal to its changelog before
// any input record is applied: it keeps local state that is current,
// snapshots local state that predates the log, and otherwise rebuilds the
// unit from the log.
//
// It first fences the log (see fencing.go): what it keeps or restores is
// the log up to its own fence, and nothing an earlier owner appends later
// can count.
func (c *partitionConsumer) prepareState(ctx context.Context) error {
	p := c.p
	log := p.changelog
	end, err := log.end(ctx, c.unit)
	if err != nil {
		return err
	}
	fence, err := log.fence(ctx, c.unit, c.generation, end)
	if err != nil {
		return err
	}
	// Current: the mark is on the last record before the fence.
	current, err := p.store.IsCurrent(c.unit, fence)
	if err != nil {
		return err
	}
	if current {
		return p.store.AdvanceMark(c.unit, fence)
	}
	has, err := p.store.HasState(c.unit)
	if err != nil {
		return err
	}
	if end == 0 && fence == 0 && has {
		p.log.Info("changelog is empty: logging the local state", "topic", c.topic, "partition", c.unit.Partition)
		return p.store.Snapshot(ctx, c.unit)
	}
	return c.restore(ctx, fence+1)
}

// restore rebuilds the unit from changelog records [first, end).
func (c *partitionConsumer) restore(ctx context.Context, end int64) error {
	p := c.p
	topic := p.changelog.topics[c.unit.Stream]
	started := time.Now()
	p.m.restoring.Inc()
	defer p.m.restoring.Dec()
	r, err := p.store.BeginRestore(c.unit)
	if err != nil {
		return err
	}
	defer r.Cancel()
	var skipped int64
	var staleKeys [][]byte
	if end > 0 {
		reader := kafka.NewReader(kafka.ReaderConfig{
			Brokers: p.cfg.Brokers, Dialer: p.cfg.conn().Dialer(), Topic: topic, Partition: int(c.unit.Partition),
			MinBytes: 1, MaxBytes: 2 * changelogMaxBytes, MaxWait: 500 * time.Millisecond,
		})
		defer reader.Close()
		if err := reader.SetOffset(kafka.FirstOffset); err != nil {
			return err
		}
		nextLog := time.Now().Add(2 * time.Second)
		var epoch int64
		for {
			m, err := reader.FetchMessage(ctx)
			if err != nil {
				return err
			}
			// Epochs only rise along a log written by its owners: a lower
			// one is a stale owner's late append (fencing.go).
			if e := epochOf(m.Headers); e < epoch {
				skipped++
				staleKeys = append(staleKeys, m.Key)
			} else if epoch = e; !isFence(m.Key) {
				ch, err := decodeChange(m.Key, m.Value)
				if err != nil {
					return err
				}
				if err := r.Apply(ch); err != nil {
					return err
				}
			}
			if time.Now().After(nextLog) {
				p.log.Info("restoring partition state", "changelog", topic, "partition", c.unit.Partition,
					"offset", m.Offset, "end", end, "records", r.Records())
				nextLog = time.Now().Add(2 * time.Second)
			}
			if m.Offset >= end-1 {
				break
			}
		}
	}
	if err := r.Finish(end - 1); err != nil {
		return err
	}
	if len(staleKeys) > 0 {
		// Compaction keeps a key's last record, which may be the stale
		// owner's: log this owner's values after it.
		p.m.foreign.WithLabelValues(c.topic).Add(float64(skipped))
		if err := p.store.Relog(ctx, c.unit, staleKeys); err != nil {
			return err
		}
	}
	took := time.Since(started)
	p.m.restoreRecords.WithLabelValues(c.topic).Add(float64(r.Records()))
	p.m.restoreSeconds.Observe(took.Seconds())
	p.log.Info("restored partition state from changelog", "changelog", topic, "partition", c.unit.Partition,
		"records", r.Records(), "stale_owner_records_skipped", skipped, "took", took.Round(time.Millisecond))
	return nil
}
