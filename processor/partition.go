package processor

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
)

// partitionConsumer is the single writer of one unit's state for the
// lifetime of one group generation.
type partitionConsumer struct {
	p         *Processor
	gen       *kafka.Generation
	topic     string
	unit      state.Unit
	committed int64 // offset the group had committed when assigned

	applied      int64 // last offset applied to the state, -1 for none
	commitDone   int64 // last offset committed to the group
	lastCommitAt time.Time
}

type decoded struct {
	msg kafka.Message
	rec schemas.Record
	err error
}

func (c *partitionConsumer) run(ctx context.Context) {
	p := c.p
	log := p.log.With("topic", c.topic, "partition", c.unit.Partition)
	if p.changelog != nil {
		if err := c.prepareState(ctx); err != nil {
			if ctx.Err() == nil {
				log.Error("cannot prepare partition state from the changelog", "err", err)
			}
			return
		}
	}
	if err := p.store.Own(c.unit); err != nil {
		log.Error("cannot take partition", "err", err)
		return
	}
	defer p.store.Disown(c.unit)
	last, ok, err := p.store.LastOffset(c.unit)
	if err != nil {
		log.Error("cannot read applied offset", "err", err)
		return
	}
	start := c.committed
	switch {
	case ok && (start < 0 || last+1 >= start):
		start = last + 1
	case ok:
		log.Warn("local state is behind the committed offset; records in between were applied by another instance",
			"applied", last, "committed", start)
	case start < 0:
		start = kafka.FirstOffset
	}
	c.applied = start - 1
	c.commitDone = c.applied
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   p.cfg.Brokers,
		Topic:     c.topic,
		Partition: int(c.unit.Partition),
		MinBytes:  1,
		MaxBytes:  4 << 20,
		// MaxWait is also kafka-go's read deadline: below ~0.5 s large fetches time out (field notes).
		MaxWait:     500 * time.Millisecond,
		ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) { log.Debug("kafka reader: " + f) }),
	})
	defer r.Close()
	if err := r.SetOffset(start); err != nil {
		log.Error("cannot seek", "offset", start, "err", err)
		return
	}
	log.Info("partition assigned", "start_offset", start)
	pl := strconv.Itoa(int(c.unit.Partition))
	nextRetention := time.Now()
	for ctx.Err() == nil {
		c.waitForOutbox(ctx)
		batch := c.fetch(ctx, r)
		if len(batch) > 0 {
			// A batch that was read is applied even when shutdown began
			// meanwhile: draining means finishing what is in flight.
			if err := c.apply(context.WithoutCancel(ctx), batch); err != nil {
				log.Error("cannot apply batch; stopping this partition until the next rebalance", "err", err)
				return
			}
			last := batch[len(batch)-1].msg
			p.m.lag.WithLabelValues(c.topic, pl).Set(float64(max(0, last.HighWaterMark-last.Offset-1)))
		}
		c.commit(len(batch) == 0 || ctx.Err() != nil)
		p.m.commitLag.WithLabelValues(c.topic, pl).Set(float64(c.applied - c.commitDone))
		if now := time.Now(); now.After(nextRetention) && ctx.Err() == nil {
			nextRetention = now.Add(p.cfg.RetentionInterval)
			if n, err := p.store.ExpireFinished(ctx, c.unit, now.Add(-p.store.Retention())); err != nil {
				log.Warn("cannot expire finished metrics", "err", err)
			} else if n > 0 {
				log.Info("expired finished metrics", "count", n)
			}
		}
	}
	c.commit(true)
	log.Info("partition released", "applied_offset", c.applied)
}

// fetch reads up to BatchSize records: it waits up to a second for the
// first, then up to BatchWait for the rest.
func (c *partitionConsumer) fetch(ctx context.Context, r *kafka.Reader) []decoded {
	p := c.p
	var batch []decoded
	firstCtx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	fctx := firstCtx
	for len(batch) < p.cfg.BatchSize {
		msg, err := r.FetchMessage(fctx)
		if err != nil {
			break
		}
		rec, derr := p.decoder.Decode(msg.Value)
		batch = append(batch, decoded{msg: msg, rec: rec, err: derr})
		if len(batch) == 1 {
			var cancelRest context.CancelFunc
			fctx, cancelRest = context.WithTimeout(ctx, p.cfg.BatchWait)
			defer cancelRest()
		}
	}
	return batch
}

func (c *partitionConsumer) apply(ctx context.Context, batch []decoded) error {
	p := c.p
	started := time.Now()
	var invalid []decoded
	for _, d := range batch {
		if d.err != nil {
			invalid = append(invalid, d)
			p.logInvalid(c.topic, int(c.unit.Partition), d.msg.Offset, d.err)
		}
	}
	if len(invalid) > 0 {
		if err := p.dlq.send(ctx, invalid); err != nil {
			return err
		}
	}
	lastOffset := batch[len(batch)-1].msg.Offset
	var st joinStats
	err := p.store.Update(ctx, c.unit, func(b *state.Batch) error {
		st = joinStats{}
		for _, d := range batch {
			if d.err != nil {
				continue
			}
			var err error
			if c.unit.Stream == state.Network {
				err = applyNetwork(b, d.rec, &st)
			} else {
				err = applyEvent(b, d.rec, &st)
			}
			if err != nil {
				return err
			}
		}
		return b.SetOffset(lastOffset)
	})
	if err != nil {
		return err
	}
	c.applied = lastOffset
	p.m.consumed.WithLabelValues(c.topic).Add(float64(len(batch)))
	p.m.duplicates.WithLabelValues(c.topic).Add(float64(st.duplicates))
	p.m.late.WithLabelValues(c.topic).Add(float64(st.late))
	p.m.finished.WithLabelValues(c.unit.Stream.String()).Add(float64(st.finished))
	p.m.applySecs.Observe(time.Since(started).Seconds())
	return nil
}

// commit commits the applied offset to the group when CommitInterval has
// passed, or now when force is set and there is something to commit.
func (c *partitionConsumer) commit(force bool) {
	if c.applied == c.commitDone || (!force && time.Since(c.lastCommitAt) < c.p.cfg.CommitInterval) {
		return
	}
	err := c.gen.CommitOffsets(map[string]map[int]int64{c.topic: {int(c.unit.Partition): c.applied + 1}})
	c.lastCommitAt = time.Now()
	if err != nil {
		// Harmless for correctness: the state holds the applied offset.
		if !errors.Is(err, kafka.RebalanceInProgress) && !errors.Is(err, kafka.IllegalGeneration) {
			c.p.log.Warn("cannot commit offset", "topic", c.topic, "partition", c.unit.Partition, "offset", c.applied+1, "err", err)
		}
		return
	}
	c.commitDone = c.applied
}

// waitForOutbox pauses fetching while a publisher's outbox is over its bound.
func (c *partitionConsumer) waitForOutbox(ctx context.Context) {
	p := c.p
	if p.store.MaxOutboxDepth() <= p.cfg.MaxOutboxDepth {
		return
	}
	p.m.paused.Set(1)
	defer p.m.paused.Set(0)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for p.store.MaxOutboxDepth() > p.cfg.MaxOutboxDepth {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
