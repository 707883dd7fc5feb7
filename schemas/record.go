package schemas

import "time"

// Schema identifiers carried in every record's "schema" field.
const (
	EventSchema   = "pipetel.event/v1"
	NetworkSchema = "pipetel.network/v1"
)

// Default topic names.
const (
	DefaultEventsTopic  = "pipetel.events"
	DefaultNetworkTopic = "pipetel.network"
)

// DefaultMaxRecordBytes is the largest record value the decoder accepts unless
// configured otherwise.
const DefaultMaxRecordBytes = 64 << 10

// DefaultOperation is the network operation recorded when a start names none.
const DefaultOperation = "remote_call"

// Kind says which moment of an execution a record marks.
type Kind string

// The record kinds. Network records are only start or end.
const (
	KindStart Kind = "start"
	KindEnd   Kind = "end"
	KindRetry Kind = "retry"
)

// Record is one decoded input record: an event record when Schema is
// EventSchema, a network record when it is NetworkSchema. Fields that do not
// belong to the record's schema and kind are zero.
type Record struct {
	Schema string
	Kind   Kind
	TaskID string
	Time   time.Time

	// Event start.
	EventName  string
	PipelineID string
	ProcessID  *int64

	// Event end and network end: non-empty means failed.
	Error string

	// Network start and end.
	OpID          string
	Host          string
	Port          int
	Operation     string
	BytesSent     int64
	BytesReceived int64
}

// IsNetwork reports whether r is a network record.
func (r Record) IsNetwork() bool { return r.Schema == NetworkSchema }
