package processor

import (
	"fmt"
	"math"
	"time"

	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
)

// Open-task policies when a partition reaches max_open_tasks.
const (
	PolicyExpireOldest = "expire_oldest"
	PolicyPause        = "pause"
)

// maxExpiredPerRecord bounds the expiries one record triggers in one
// transaction; the rest follow with the next records or the next idle tick.
const maxExpiredPerRecord = 2000

// maxClockSkew bounds how far ahead of the wall clock a record's time can
// push stream time, so one record from a host with a wrong clock cannot
// expire a partition's open tasks.
const maxClockSkew = time.Minute

// rules decide deadlines: a task with a start times out TaskTimeout (or its
// event name's override) after its start; a task without one (an end or
// retries only) is an orphan OrphanGrace after its first record. All in
// record time, so replaying the same input gives the same output.
type rules struct {
	taskTimeout  time.Duration
	timeouts     map[string]time.Duration
	opTimeout    time.Duration
	orphanGrace  time.Duration
	maxOpen      int64
	expireOldest bool
}

func newRules(cfg Config) rules {
	return rules{
		taskTimeout: cfg.TaskTimeout, timeouts: cfg.TaskTimeouts, opTimeout: cfg.OperationTimeout,
		orphanGrace: cfg.OrphanGrace, maxOpen: cfg.MaxOpenTasks, expireOldest: cfg.OpenTaskPolicy == PolicyExpireOldest,
	}
}

func (r rules) timeoutOf(eventName string) time.Duration {
	if d, ok := r.timeouts[eventName]; ok {
		return d
	}
	return r.taskTimeout
}

func (r rules) eventDeadline(pe state.PendingEvent) int64 {
	if pe.HasStart {
		return pe.StartTime.Add(r.timeoutOf(pe.EventName)).UnixNano()
	}
	return pe.FirstSeen.Add(r.orphanGrace).UnixNano()
}

func (r rules) networkDeadline(pn state.PendingNetwork) int64 {
	if pn.HasStart {
		return pn.StartTime.Add(r.opTimeout).UnixNano()
	}
	return pn.FirstSeen.Add(r.orphanGrace).UnixNano()
}

// clock is one partition's stream time and the earliest deadline that may
// be due: a lower bound, so a stale value only costs a lookup.
type clock struct {
	stream       int64 // Unix nanoseconds; persisted in the unit's state
	nextDeadline int64 // 0: unknown, look it up
	// newest is the newest record time applied, clamped like stream but
	// never moved by the wall clock; persisted. Retention counts back from
	// it, so a backfill of old records stays queryable (see README).
	newest int64
}

// advance moves stream time to a record's time, never back, and never more
// than maxClockSkew past the wall clock.
func (c *clock) advance(recordTime time.Time, wall time.Time) {
	t := min(recordTime.UnixNano(), wall.Add(maxClockSkew).UnixNano())
	c.stream = max(c.stream, t)
	c.newest = max(c.newest, t)
}

// expireDue finishes every pending entry whose deadline is at or before the
// stream time, at most limit of them.
func (j *joiner) expireDue(b *state.Batch, st *joinStats) error {
	if j.clock.nextDeadline != 0 && j.clock.stream < j.clock.nextDeadline {
		return nil
	}
	limit := j.expiryBound()
	due, next, err := b.Due(j.clock.stream, limit)
	if err != nil {
		return err
	}
	for _, d := range due {
		if err := j.expire(b, d, st, false); err != nil {
			return err
		}
	}
	j.clock.nextDeadline = next
	if len(due) == limit {
		j.clock.nextDeadline = 0 // more may be due
	}
	if next == 0 && len(due) < limit {
		j.clock.nextDeadline = math.MaxInt64
	}
	return nil
}

// enforceCap expires the entries closest to their deadline while the
// partition holds more than max_open_tasks, under the expire_oldest policy.
func (j *joiner) enforceCap(b *state.Batch, st *joinStats) error {
	if !j.rules.expireOldest || j.rules.maxOpen <= 0 {
		return nil
	}
	open, err := b.OpenCount()
	if err != nil || open <= j.rules.maxOpen {
		return err
	}
	// Expire a little below the cap (1%), so that the next records do not
	// each pay for a lookup of the earliest deadlines.
	slack := max(1, j.rules.maxOpen/100)
	due, _, err := b.Due(math.MaxInt64, min(int(open-j.rules.maxOpen+slack-1), j.expiryBound()))
	if err != nil {
		return err
	}
	for _, d := range due {
		if err := j.expire(b, d, st, true); err != nil {
			return err
		}
	}
	j.clock.nextDeadline = 0
	return nil
}

// expire finishes one pending entry as timed_out (it has a start) or orphan
// (it has none).
func (j *joiner) expire(b *state.Batch, d state.Due, st *joinStats, early bool) error {
	if b.Unit().Stream == state.Network {
		pn, found, err := b.PendingNetwork(d.TaskID, d.OpID)
		if err != nil || !found {
			return err
		}
		m := state.PendingNetworkMetric(d.TaskID, d.OpID, pn)
		m.Status, m.Error = j.expiredStatus(pn.HasStart, j.rules.opTimeout, early)
		st.countExpired(m.Status)
		if err := b.DeletePendingNetwork(d.TaskID, d.OpID); err != nil {
			return err
		}
		return j.finishNetwork(b, m, st)
	}
	pe, found, err := b.PendingEvent(d.TaskID)
	if err != nil || !found {
		return err
	}
	m := state.PendingEventMetric(d.TaskID, pe)
	m.Status, m.Error = j.expiredStatus(pe.HasStart, j.rules.timeoutOf(pe.EventName), early)
	st.countExpired(m.Status)
	if err := b.DeletePendingEvent(d.TaskID); err != nil {
		return err
	}
	return j.finishEvent(b, m, st)
}

func (j *joiner) expiredStatus(hasStart bool, timeout time.Duration, early bool) (schemas.Status, string) {
	status, msg := schemas.StatusTimedOut, fmt.Sprintf("no end record within %s of the start", timeout)
	if !hasStart {
		status, msg = schemas.StatusOrphan, fmt.Sprintf("no start record within %s of the first record", j.rules.orphanGrace)
	}
	if early {
		msg = fmt.Sprintf("expired early: the partition reached max_open_tasks (%d)", j.rules.maxOpen)
	}
	return status, msg
}

func (st *joinStats) countExpired(s schemas.Status) {
	if s == schemas.StatusOrphan {
		st.orphans++
	} else {
		st.timedOut++
	}
}
