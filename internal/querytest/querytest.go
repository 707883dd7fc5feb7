// Package querytest fills a state store with metrics for the tests of the
// query API and its client, without a broker or the processor: Apply joins
// records the simple way (a start and an end finish a metric; no
// duplicates, late records, deadlines or expiry, which are the processor's
// and tested there).
package querytest

import (
	"context"
	"fmt"

	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
)

// Apply joins recs into unit u of s in one transaction.
func Apply(s *state.Store, u state.Unit, recs ...schemas.Record) error {
	return s.Update(context.Background(), u, func(b *state.Batch) error {
		for _, r := range recs {
			var err error
			switch r.Schema {
			case schemas.EventSchema:
				err = applyEvent(b, r)
			case schemas.NetworkSchema:
				err = applyNetwork(b, r)
			default:
				err = fmt.Errorf("record of task %q: unknown schema %q", r.TaskID, r.Schema)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

func applyEvent(b *state.Batch, r schemas.Record) error {
	pe, found, err := b.PendingEvent(r.TaskID)
	if err != nil {
		return err
	}
	if !found {
		pe.FirstSeen = r.Time
	}
	switch r.Kind {
	case schemas.KindStart:
		pe.HasStart, pe.EventName, pe.PipelineID, pe.ProcessID, pe.StartTime = true, r.EventName, r.PipelineID, r.ProcessID, r.Time
	case schemas.KindEnd:
		pe.HasEnd, pe.EndTime, pe.Error = true, r.Time, r.Error
	case schemas.KindRetry:
		pe.Retries = append(pe.Retries, r.Time.UnixNano())
	}
	if !pe.HasStart || !pe.HasEnd {
		return b.PutPendingEvent(r.TaskID, pe, !found)
	}
	if found {
		if err := b.DeletePendingEvent(r.TaskID); err != nil {
			return err
		}
	}
	m := state.PendingEventMetric(r.TaskID, pe)
	d := pe.EndTime.Sub(pe.StartTime).Seconds()
	m.DurationSeconds, m.Status = &d, schemas.StatusCompleted
	if pe.Error != "" {
		m.Status = schemas.StatusFailed
	}
	return b.FinishEvent(m)
}

func applyNetwork(b *state.Batch, r schemas.Record) error {
	pn, found, err := b.PendingNetwork(r.TaskID, r.OpID)
	if err != nil {
		return err
	}
	if !found {
		pn.FirstSeen = r.Time
	}
	switch r.Kind {
	case schemas.KindStart:
		pn.HasStart, pn.Host, pn.Port, pn.Operation, pn.StartTime = true, r.Host, r.Port, r.Operation, r.Time
	case schemas.KindEnd:
		pn.HasEnd, pn.EndTime, pn.BytesSent, pn.BytesReceived, pn.Error = true, r.Time, r.BytesSent, r.BytesReceived, r.Error
	}
	if !pn.HasStart || !pn.HasEnd {
		return b.PutPendingNetwork(r.TaskID, r.OpID, pn, !found)
	}
	if found {
		if err := b.DeletePendingNetwork(r.TaskID, r.OpID); err != nil {
			return err
		}
	}
	m := state.PendingNetworkMetric(r.TaskID, r.OpID, pn)
	l := pn.EndTime.Sub(pn.StartTime).Seconds()
	m.LatencySeconds, m.Status = &l, schemas.StatusCompleted
	if pn.Error != "" {
		m.Status = schemas.StatusFailed
	}
	return b.FinishNetwork(m)
}
