package processor

import (
	"slices"
	"time"

	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
)

// maxTrackedRetries bounds the retry times kept per pending task for
// deduplication; retries past it are still counted.
const maxTrackedRetries = 10_000

// joinStats counts what one batch did, for the processor's own metrics.
type joinStats struct {
	applied    int
	duplicates int
	late       int
	finished   int
	timedOut   int // expired with a start but no end
	orphans    int // expired with no start
	// pastRetention counts metrics that finished already older than the
	// retention: counted and published, but swept from the API at once.
	pastRetention int
}

// joiner applies records to one unit: the join, deadlines and expiry.
type joiner struct {
	rules rules
	clock *clock
	wall  func() time.Time
	// retention is the store's: a metric whose end is this far behind the
	// newest record time is swept by the next retention pass. 0: no check.
	retention time.Duration
	// expireLimit, when > 0, lowers maxExpiredPerRecord: set after a
	// transaction of one record was too big for the changelog because of
	// what it expired, so the expiries spread over more transactions.
	expireLimit int
	// fail, when set (tests only), fails the records it returns an error
	// for, as a record that cannot be applied would.
	fail func(schemas.Record) error
}

// expiryBound is how many entries one record may expire.
func (j *joiner) expiryBound() int {
	if j.expireLimit > 0 {
		return j.expireLimit
	}
	return maxExpiredPerRecord
}

// shrinkExpiry halves the expiry bound after a too-big transaction and
// reports whether it could.
func (j *joiner) shrinkExpiry() bool {
	if b := j.expiryBound(); b > 1 {
		j.expireLimit = b / 2
		return true
	}
	return false
}

// apply advances stream time to the record, expires what became due before
// it, joins it, and enforces the open-task cap. Everything it decides depends
// on the records and the state only, so a replay decides the same.
func (j *joiner) apply(b *state.Batch, r schemas.Record, st *joinStats) error {
	if j.fail != nil {
		if err := j.fail(r); err != nil {
			return err
		}
	}
	j.clock.advance(r.Time, j.wall())
	if err := j.expireDue(b, st); err != nil {
		return err
	}
	var err error
	if b.Unit().Stream == state.Network {
		err = j.applyNetwork(b, r, st)
	} else {
		err = j.applyEvent(b, r, st)
	}
	if err != nil {
		return err
	}
	return j.enforceCap(b, st)
}

// noteDeadline keeps the clock's earliest-deadline bound low enough. An
// unknown bound (0) stays unknown: earlier deadlines may be due (a record
// expired only its bound of them), and only a lookup can tell.
func (j *joiner) noteDeadline(d int64) {
	if j.clock.nextDeadline != 0 && d < j.clock.nextDeadline {
		j.clock.nextDeadline = d
	}
}

// applyEvent joins one event record into the state of its partition.
// Applying the same record twice changes nothing: a record of a finished task
// is ignored, a second start or end of a pending task is ignored, and a retry
// is counted once per distinct record time. A retry of a finished task is
// late: it is counted as such and not applied, because the finished metric
// was already published.
func (j *joiner) applyEvent(b *state.Batch, r schemas.Record, st *joinStats) error {
	// A task is pending or finished, never both: only a task that is not
	// pending needs the finished lookup.
	pe, found, err := b.PendingEvent(r.TaskID)
	if err != nil {
		return err
	}
	if !found {
		if done, err := b.HasFinishedEvent(r.TaskID); err != nil || done {
			switch {
			case done && r.Kind == schemas.KindRetry:
				st.late++
			case done:
				st.duplicates++
			}
			return err
		}
		pe.FirstSeen = r.Time
	}
	switch r.Kind {
	case schemas.KindStart:
		if pe.HasStart {
			st.duplicates++
			return nil
		}
		pe.HasStart, pe.EventName, pe.PipelineID, pe.ProcessID, pe.StartTime = true, r.EventName, r.PipelineID, r.ProcessID, r.Time
	case schemas.KindEnd:
		if pe.HasEnd {
			st.duplicates++
			return nil
		}
		pe.HasEnd, pe.EndTime, pe.Error = true, r.Time, r.Error
	case schemas.KindRetry:
		t := r.Time.UnixNano()
		if slices.Contains(pe.Retries, t) {
			st.duplicates++
			return nil
		}
		if len(pe.Retries) < maxTrackedRetries {
			pe.Retries = append(pe.Retries, t)
		} else {
			pe.UntrackedRetries++
		}
	}
	st.applied++
	if !pe.HasStart || !pe.HasEnd {
		pe.Deadline = j.rules.eventDeadline(pe)
		j.noteDeadline(pe.Deadline)
		return b.PutPendingEvent(r.TaskID, pe, !found)
	}
	if found {
		if err := b.DeletePendingEvent(r.TaskID); err != nil {
			return err
		}
	}
	st.finished++
	return j.finishEvent(b, finishedEvent(r.TaskID, pe), st)
}

func finishedEvent(taskID string, pe state.PendingEvent) schemas.EventMetric {
	m := state.PendingEventMetric(taskID, pe)
	d := pe.EndTime.Sub(pe.StartTime).Seconds()
	m.DurationSeconds = &d
	m.Status = schemas.StatusCompleted
	if pe.Error != "" {
		m.Status = schemas.StatusFailed
	}
	return m
}

// applyNetwork joins one network record into the state of its partition,
// per (task_id, op_id), with the same idempotence as applyEvent.
func (j *joiner) applyNetwork(b *state.Batch, r schemas.Record, st *joinStats) error {
	pn, found, err := b.PendingNetwork(r.TaskID, r.OpID)
	if err != nil {
		return err
	}
	if !found {
		if done, err := b.HasFinishedNetwork(r.TaskID, r.OpID); err != nil || done {
			if done {
				st.duplicates++
			}
			return err
		}
		pn.FirstSeen = r.Time
	}
	switch r.Kind {
	case schemas.KindStart:
		if pn.HasStart {
			st.duplicates++
			return nil
		}
		pn.HasStart, pn.Host, pn.Port, pn.Operation, pn.StartTime = true, r.Host, r.Port, r.Operation, r.Time
	case schemas.KindEnd:
		if pn.HasEnd {
			st.duplicates++
			return nil
		}
		pn.HasEnd, pn.EndTime, pn.BytesSent, pn.BytesReceived, pn.Error = true, r.Time, r.BytesSent, r.BytesReceived, r.Error
	default:
		return nil // the decoder rejects other kinds
	}
	st.applied++
	if !pn.HasStart || !pn.HasEnd {
		pn.Deadline = j.rules.networkDeadline(pn)
		j.noteDeadline(pn.Deadline)
		return b.PutPendingNetwork(r.TaskID, r.OpID, pn, !found)
	}
	if found {
		if err := b.DeletePendingNetwork(r.TaskID, r.OpID); err != nil {
			return err
		}
	}
	st.finished++
	return j.finishNetwork(b, finishedNetwork(r.TaskID, r.OpID, pn), st)
}

func finishedNetwork(taskID, opID string, pn state.PendingNetwork) schemas.NetworkMetric {
	m := state.PendingNetworkMetric(taskID, opID, pn)
	l := pn.EndTime.Sub(pn.StartTime).Seconds()
	m.LatencySeconds = &l
	m.Status = schemas.StatusCompleted
	if pn.Error != "" {
		m.Status = schemas.StatusFailed
	}
	return m
}

// finishEvent stores a finished event metric, noting when the retention
// will sweep it at once.
func (j *joiner) finishEvent(b *state.Batch, m schemas.EventMetric, st *joinStats) error {
	j.notePastRetention(m.EndTime, m.StartTime, st)
	return b.FinishEvent(m)
}

// finishNetwork is finishEvent for network operations.
func (j *joiner) finishNetwork(b *state.Batch, m schemas.NetworkMetric, st *joinStats) error {
	j.notePastRetention(m.EndTime, m.StartTime, st)
	return b.FinishNetwork(m)
}

// notePastRetention counts a metric the retention has already passed: its
// end (or, without one, its start: the time retention counts from) is
// older than the newest record time minus the retention.
func (j *joiner) notePastRetention(end, start *time.Time, st *joinStats) {
	if j.retention <= 0 || j.clock.newest == 0 {
		return
	}
	t := end
	if t == nil {
		t = start
	}
	if t == nil || t.UnixNano() < j.clock.newest-int64(j.retention) {
		st.pastRetention++
	}
}
