package processor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/internal/backoff"
	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
)

// partitionConsumer is the single writer of one unit's state for the
// lifetime of one group generation.
type partitionConsumer struct {
	p   *Processor
	gen *kafka.Generation
	// generation is gen's id: the least epoch this owner's changelog
	// records carry (fencing.go).
	generation int64
	topic      string
	unit       state.Unit
	committed  int64 // offset the group had committed when assigned

	applied      int64 // last offset applied to the state, -1 for none
	commitDone   int64 // last offset committed to the group
	lastCommitAt time.Time

	join       *joiner
	lastRecord time.Time // wall clock of the last batch with records

	warnedPastRetention bool // logged once per assignment, then only counted

	next      int64 // offset the next record should have; -1: not known yet
	warnedGap bool  // a skipped range is logged once per assignment, then only counted

	batchBuf []decoded // fetch's buffer
	batchLen int       // how much of it the last batch used
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
		// Right after a topic is created or the broker restarts, reading the
		// changelog's end fails for a moment (not leader, EOF): retry a few
		// times before giving the partition back to a rebalance.
		var err error
		p.restoring.Add(1) // not ready while any partition prepares its state
		for attempt := 1; attempt <= 5 && ctx.Err() == nil; attempt++ {
			if err = c.prepareState(ctx); err == nil {
				break
			}
			log.Warn("cannot prepare partition state from the changelog; retrying", "attempt", attempt, "err", err)
			sleepCtx(ctx, time.Duration(attempt)*500*time.Millisecond)
		}
		p.restoring.Add(-1)
		if err != nil {
			if ctx.Err() == nil {
				log.Error("cannot prepare partition state from the changelog", "err", err)
			}
			return
		}
	}
	if p.changelog != nil {
		defer p.changelog.release(c.unit)
	}
	if err := p.store.Own(c.unit); err != nil {
		log.Error("cannot take partition", "err", err)
		return
	}
	streamTime, err := p.store.StreamTime(c.unit)
	if err != nil {
		log.Error("cannot read stream time", "err", err)
		return
	}
	newest, err := p.store.NewestRecordTime(c.unit)
	if err != nil {
		log.Error("cannot read newest record time", "err", err)
		return
	}
	c.join = &joiner{rules: newRules(p.cfg), clock: &clock{stream: streamTime, newest: newest}, wall: p.cfg.wallClock(), retention: p.store.Retention()}
	c.lastRecord = time.Now()
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
	c.next = max(start, -1) // kafka.FirstOffset: whatever the topic still has
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   p.cfg.Brokers,
		Dialer:    p.cfg.conn().Dialer(),
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
		var batch []decoded
		if c.paused() {
			sleepCtx(ctx, 200*time.Millisecond)
		} else {
			batch = c.fetch(ctx, r)
		}
		if len(batch) > 0 {
			// A batch that was read is applied even when shutdown began
			// meanwhile: draining means finishing what is in flight.
			if err := c.apply(context.WithoutCancel(ctx), batch); err != nil {
				log.Error("cannot apply batch; stopping this partition until the next rebalance", "err", err)
				return
			}
			last := batch[len(batch)-1].msg
			p.m.lag.WithLabelValues(c.topic, pl).Set(float64(max(0, last.HighWaterMark-last.Offset-1)))
			c.lastRecord = time.Now()
		} else if err := c.idleTick(context.WithoutCancel(ctx)); err != nil {
			log.Error("cannot expire open tasks; stopping this partition until the next rebalance", "err", err)
			return
		}
		if err := c.repairForeign(context.WithoutCancel(ctx)); errors.Is(err, ErrFenced) {
			log.Error("stopping this partition: another instance owns it now", "err", err)
			return
		} else if err != nil {
			log.Error("cannot supersede a stale owner's changelog records; stopping this partition until the next rebalance", "err", err)
			return
		}
		p.m.partitionOpen.WithLabelValues(c.topic, pl).Set(float64(p.store.OpenTasksOf(c.unit)))
		c.commit(len(batch) == 0 || ctx.Err() != nil)
		p.m.commitLag.WithLabelValues(c.topic, pl).Set(float64(c.applied - c.commitDone))
		if now := time.Now(); now.After(nextRetention) && ctx.Err() == nil {
			nextRetention = now.Add(p.cfg.RetentionInterval)
			if n, err := c.sweepRetention(ctx); errors.Is(err, state.ErrNotLogged) {
				// The sweep committed locally but not to the log: stop, so
				// that the next owner (maybe this one) restores from the log.
				log.Error("cannot log the retention sweep; stopping this partition until the next rebalance", "err", err)
				return
			} else if err != nil {
				log.Warn("cannot expire finished metrics", "err", err)
			} else if n > 0 {
				log.Info("expired finished metrics", "count", n)
			}
		}
	}
	c.commit(true)
	log.Info("partition released", "applied_offset", c.applied)
}

// fetch reads up to BatchSize records or BatchBytes of values: it waits up
// to a second for the first, then up to BatchWait for the rest.
func (c *partitionConsumer) fetch(ctx context.Context, r *kafka.Reader) []decoded {
	p := c.p
	// One buffer per partition, reused batch after batch: a batch is
	// applied (or its partition stops) before the next fetch.
	if c.batchBuf == nil {
		c.batchBuf = make([]decoded, 0, min(p.cfg.BatchSize, 1024))
	}
	clear(c.batchBuf[:c.batchLen]) // drop the last batch's references
	batch := c.batchBuf[:0]
	defer func() { c.batchBuf, c.batchLen = batch[:0], len(batch) }()
	firstCtx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	fctx := firstCtx
	bytes := 0
	for len(batch) < p.cfg.BatchSize && bytes < p.cfg.BatchBytes {
		msg, err := r.FetchMessage(fctx)
		if err != nil {
			break
		}
		c.checkOffset(msg.Offset)
		bytes += len(msg.Value)
		rec, derr := p.decoder.Decode(msg.Value)
		if derr == nil && string(msg.Key) != rec.TaskID {
			// Keyed otherwise, the task's records may sit on other
			// partitions and never join: refuse it, visibly.
			derr = schemas.KeyError(msg.Key, rec.TaskID)
		}
		batch = append(batch, decoded{msg: msg, rec: rec, err: derr})
		if len(batch) == 1 {
			var cancelRest context.CancelFunc
			fctx, cancelRest = context.WithTimeout(ctx, p.cfg.BatchWait)
			defer cancelRest()
		}
	}
	return batch
}

// checkOffset counts and reports offsets the reader jumped over. kafka-go
// moves a reader that asks for records the topic's retention already
// deleted (a partition paused too long, an instance down past the
// retention) to the earliest offset and only says so in its debug log:
// those records are lost to pipetel, and an operator must hear of it.
func (c *partitionConsumer) checkOffset(off int64) {
	if c.next >= 0 && off > c.next {
		c.p.m.skipped.WithLabelValues(c.topic).Add(float64(off - c.next))
		if !c.warnedGap {
			c.warnedGap = true
			c.p.log.Error("records skipped: the topic no longer holds them (deleted by its retention before they were read, or compacted); "+
				"further gaps on this partition are only counted in pipetel_skipped_offsets_total",
				"topic", c.topic, "partition", c.unit.Partition, "from_offset", c.next, "to_offset", off-1, "records", off-c.next)
		}
	}
	c.next = off + 1
}

func (c *partitionConsumer) apply(ctx context.Context, batch []decoded) error {
	p := c.p
	started := time.Now()
	var invalid []decoded
	for _, d := range batch {
		if d.err != nil {
			invalid = append(invalid, d)
		}
	}
	if len(invalid) > 0 {
		if err := p.dlq.send(ctx, invalid); err != nil {
			return err
		}
		// Counted once written: a batch read again after a failed write
		// (the partition stops, a rebalance hands it out again) counts once.
		for _, d := range invalid {
			p.logInvalid(c.topic, int(c.unit.Partition), d.msg.Offset, d.err)
		}
	}
	if err := c.applyValid(ctx, batch); err != nil {
		if !isolatable(ctx, err) {
			return err
		}
		if err := c.isolate(ctx, batch, err); err != nil {
			return err
		}
	}
	// Observed before the records are counted: a reader who sees them
	// counted sees this batch's apply time too.
	p.m.applySecs.Observe(time.Since(started).Seconds())
	p.m.consumed.WithLabelValues(c.topic).Add(float64(len(batch)))
	return nil
}

// isolatable reports whether err, from applying a batch, may be a record's
// fault rather than the store's or the broker's.
func isolatable(ctx context.Context, err error) bool {
	return ctx.Err() == nil && !errors.Is(err, state.ErrNotLogged) && !errors.Is(err, state.ErrClosed) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// isolate applies a batch that failed record by record. A record that
// fails twice on its own while the store takes a write of this unit is
// dead-lettered (CodeApplyFailed) and skipped; any other failure stops the
// partition as before, for it may heal (disk, broker).
func (c *partitionConsumer) isolate(ctx context.Context, batch []decoded, batchErr error) error {
	p := c.p
	for i := range batch {
		one := batch[i : i+1]
		if one[0].err != nil {
			continue // dead-lettered already
		}
		err := c.applyValid(ctx, one)
		if err == nil {
			continue
		}
		if !isolatable(ctx, err) {
			return err
		}
		if perr := c.probe(ctx); perr != nil {
			return fmt.Errorf("%w (and the store refuses other writes too: %w)", err, perr)
		}
		if err = c.applyValid(ctx, one); err == nil {
			continue
		}
		if !isolatable(ctx, err) {
			return err
		}
		one[0].err = &applyError{err: err}
		if err := p.dlq.send(ctx, one); err != nil {
			return err
		}
		p.logInvalid(c.topic, int(c.unit.Partition), one[0].msg.Offset, one[0].err)
		if err := c.applyValid(ctx, one); err != nil { // moves the offset past it
			return err
		}
	}
	p.log.Warn("a batch failed and was applied record by record", "topic", c.topic, "partition", c.unit.Partition, "err", batchErr)
	return nil
}

// probe writes the unit's applied offset again: it fails when the store or
// the changelog fails whatever is written.
func (c *partitionConsumer) probe(ctx context.Context) error {
	return c.p.store.Update(ctx, c.unit, func(b *state.Batch) error {
		if c.applied < 0 {
			return nil
		}
		return b.SetOffset(c.applied)
	})
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

// idleTick lets stream time follow the wall clock once the partition has
// been idle for IdleTimeAdvance, and expires what became due. It writes only
// when something expires.
func (c *partitionConsumer) idleTick(ctx context.Context) error {
	idle := time.Since(c.lastRecord)
	if idle < c.p.cfg.IdleTimeAdvance {
		return nil
	}
	saved := *c.join.clock
	target := saved.stream + int64(idle)
	if saved.nextDeadline != 0 && target < saved.nextDeadline {
		return nil
	}
	var st joinStats
	update := func(b *state.Batch) error {
		st = joinStats{}
		*c.join.clock = saved
		c.join.clock.stream = target
		if err := c.join.expireDue(b, &st); err != nil {
			return err
		}
		if st.timedOut+st.orphans == 0 {
			return nil
		}
		return b.SetStreamTime(target)
	}
	err := c.p.store.Update(ctx, c.unit, update)
	for errors.Is(err, state.ErrTooBig) && c.join.shrinkExpiry() {
		err = c.p.store.Update(ctx, c.unit, update)
	}
	c.join.expireLimit = 0
	if err != nil {
		*c.join.clock = saved
		return err
	}
	if st.timedOut+st.orphans == 0 {
		c.join.clock.stream = saved.stream // nothing persisted: keep the record-driven time
	} else {
		c.lastRecord = time.Now()
	}
	c.countExpired(st)
	return nil
}

// sweepRetention removes the finished metrics that ended more than the
// retention before the newest record time. Retention counts back from the
// records, not the wall clock: live, the two agree; a backfill of old
// records stays queryable until newer records push it out, and an idle
// partition keeps its last day.
func (c *partitionConsumer) sweepRetention(ctx context.Context) (int, error) {
	if c.join.clock.newest == 0 {
		return 0, nil
	}
	cutoff := time.Unix(0, c.join.clock.newest).Add(-c.p.store.Retention())
	return c.p.store.ExpireFinished(ctx, c.unit, cutoff)
}

// notePastRetention counts metrics that finished already past the
// retention, and says so in the log once per assignment of the partition.
func (c *partitionConsumer) notePastRetention(n int) {
	if n == 0 {
		return
	}
	c.p.m.pastRetention.WithLabelValues(c.unit.Stream.String()).Add(float64(n))
	if c.warnedPastRetention {
		return
	}
	c.warnedPastRetention = true
	c.p.log.Warn("finished metrics older than the retention were counted and published but are not kept queryable; "+
		"to backfill history, replay it to topics of its own or raise state.retention (see README, Backfill)",
		"topic", c.topic, "partition", c.unit.Partition, "count", n,
		"newest_record_time", time.Unix(0, c.join.clock.newest).UTC(), "retention", c.p.store.Retention())
}

func (c *partitionConsumer) countExpired(st joinStats) {
	stream := c.unit.Stream.String()
	c.p.m.expired.WithLabelValues(stream, string(schemas.StatusTimedOut)).Add(float64(st.timedOut))
	c.p.m.expired.WithLabelValues(stream, string(schemas.StatusOrphan)).Add(float64(st.orphans))
	c.p.m.finished.WithLabelValues(stream).Add(float64(st.timedOut + st.orphans))
	c.notePastRetention(st.pastRetention)
}

// paused reports whether the pause policy holds this partition at its cap.
func (c *partitionConsumer) paused() bool {
	cfg := c.p.cfg
	return cfg.OpenTaskPolicy == PolicyPause && c.p.store.OpenTasksOf(c.unit) >= cfg.MaxOpenTasks
}

func sleepCtx(ctx context.Context, d time.Duration) { backoff.Wait(ctx, d) }

// applyValid applies the batch's valid records and its last offset in one
// transaction. A batch too big for one transaction is split in halves, each
// committed with its own last offset.
func (c *partitionConsumer) applyValid(ctx context.Context, batch []decoded) error {
	p := c.p
	lastOffset := batch[len(batch)-1].msg.Offset
	var st joinStats
	saved := *c.join.clock
	err := p.store.Update(ctx, c.unit, func(b *state.Batch) error {
		st = joinStats{}
		*c.join.clock = saved // a retried transaction starts from the same clock
		for _, d := range batch {
			if d.err != nil {
				continue
			}
			if err := c.join.apply(b, d.rec, &st); err != nil {
				return err
			}
		}
		if c.join.clock.stream != saved.stream {
			if err := b.SetStreamTime(c.join.clock.stream); err != nil {
				return err
			}
		}
		if c.join.clock.newest != saved.newest {
			if err := b.SetNewestRecordTime(c.join.clock.newest); err != nil {
				return err
			}
		}
		return b.SetOffset(lastOffset)
	})
	if err != nil {
		*c.join.clock = saved
		if errors.Is(err, state.ErrTooBig) && len(batch) > 1 {
			mid := len(batch) / 2
			if err := c.applyValid(ctx, batch[:mid]); err != nil {
				return err
			}
			return c.applyValid(ctx, batch[mid:])
		}
		// One record still too big: what it expires made it so (a record
		// alone is bounded by max_record_bytes). Expire fewer per record.
		if errors.Is(err, state.ErrTooBig) && c.join.shrinkExpiry() {
			c.p.log.Warn("expiring fewer entries per record: a transaction was too big for the changelog",
				"topic", c.topic, "partition", c.unit.Partition, "expiries_per_record", c.join.expiryBound())
			return c.applyValid(ctx, batch)
		}
		return err
	}
	c.join.expireLimit = 0
	c.countExpired(st)
	c.applied = lastOffset
	p.m.duplicates.WithLabelValues(c.topic).Add(float64(st.duplicates))
	p.m.late.WithLabelValues(c.topic).Add(float64(st.late))
	p.m.finished.WithLabelValues(c.unit.Stream.String()).Add(float64(st.finished))
	return nil
}
