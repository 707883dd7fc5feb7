package state

import (
	"slices"
	"time"

	"github.com/pipetel/pipetel/schemas"
)

// PendingEvent is an event execution that is not finished: it has a start
// without an end, or an end whose start has not arrived yet.
type PendingEvent struct {
	HasStart   bool      `json:"hs,omitempty"`
	EventName  string    `json:"en,omitempty"`
	PipelineID string    `json:"pl,omitempty"`
	ProcessID  *int64    `json:"pr,omitempty"`
	StartTime  time.Time `json:"st"`
	HasEnd     bool      `json:"he,omitempty"`
	EndTime    time.Time `json:"et"`
	Error      string    `json:"er,omitempty"`
	// Retries holds the record time (Unix nanoseconds) of each distinct
	// retry record, so a repeated retry record is counted once.
	Retries []int64 `json:"rt,omitempty"`
	// UntrackedRetries counts retries past the tracked ones; they cannot be
	// deduplicated.
	UntrackedRetries int `json:"ur,omitempty"`
	// FirstSeen is the record time of the first record of this task.
	FirstSeen time.Time `json:"fs"`
	// Deadline (Unix nanoseconds of stream time) is when the task is
	// finished as timed_out or orphan if it is still pending; 0 means none.
	Deadline int64 `json:"dl,omitempty"`
}

// clone copies pe so that appending to its retries cannot write into a
// slice the cache or another batch still holds.
func (pe PendingEvent) clone() PendingEvent {
	if len(pe.Retries) > 0 {
		pe.Retries = slices.Clone(pe.Retries)
	}
	return pe
}

// PendingNetwork is a network operation that is not finished.
type PendingNetwork struct {
	HasStart      bool      `json:"hs,omitempty"`
	Host          string    `json:"h,omitempty"`
	Port          int       `json:"p,omitempty"`
	Operation     string    `json:"o,omitempty"`
	StartTime     time.Time `json:"st"`
	HasEnd        bool      `json:"he,omitempty"`
	EndTime       time.Time `json:"et"`
	BytesSent     int64     `json:"bs,omitempty"`
	BytesReceived int64     `json:"br,omitempty"`
	Error         string    `json:"er,omitempty"`
	FirstSeen     time.Time `json:"fs"`
	Deadline      int64     `json:"dl,omitempty"`
}

// PendingEventMetric is the metric of a pending event: the query API shows
// it as it is (status pending), and the join and the expiry finish it (end
// time, duration, status). The one place an event metric is built.
func PendingEventMetric(taskID string, pe PendingEvent) schemas.EventMetric {
	m := schemas.EventMetric{
		TaskID: taskID, EventName: pe.EventName, PipelineID: pe.PipelineID, ProcessID: pe.ProcessID,
		Status: schemas.StatusPending, Error: pe.Error, RetryCount: len(pe.Retries) + pe.UntrackedRetries,
	}
	if pe.HasStart {
		t := pe.StartTime
		m.StartTime = &t
	}
	if pe.HasEnd {
		t := pe.EndTime
		m.EndTime = &t
	}
	return m
}

// PendingNetworkMetric is PendingEventMetric for a network operation.
func PendingNetworkMetric(taskID, opID string, pn PendingNetwork) schemas.NetworkMetric {
	m := schemas.NetworkMetric{
		TaskID: taskID, OpID: opID, Host: pn.Host, Port: pn.Port, Operation: pn.Operation,
		BytesSent: pn.BytesSent, BytesReceived: pn.BytesReceived, Status: schemas.StatusPending, Error: pn.Error,
	}
	if pn.HasStart {
		t := pn.StartTime
		m.StartTime = &t
	}
	if pn.HasEnd {
		t := pn.EndTime
		m.EndTime = &t
	}
	return m
}
