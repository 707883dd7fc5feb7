package schemas

import "time"

// Status is the state of an event or network metric.
type Status string

// Metric statuses. Pending metrics have a start (or an end) but are not
// finished; TimedOut and Orphan are set by expiry.
const (
	StatusPending   Status = "pending"
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
	StatusTimedOut  Status = "timed_out"
	StatusOrphan    Status = "orphan"
)

// EventMetric is one event execution as the query API and the sinks see it.
type EventMetric struct {
	TaskID          string     `json:"task_id"`
	EventName       string     `json:"event_name"`
	PipelineID      string     `json:"pipeline_id"`
	ProcessID       *int64     `json:"process_id"`
	StartTime       *time.Time `json:"start_time"`
	EndTime         *time.Time `json:"end_time"`
	DurationSeconds *float64   `json:"duration_seconds"`
	Status          Status     `json:"status"`
	Error           string     `json:"error"`
	RetryCount      int        `json:"retry_count"`
}

// NetworkMetric is one network operation as the query API and the sinks see it.
type NetworkMetric struct {
	TaskID         string     `json:"task_id"`
	OpID           string     `json:"op_id"`
	Host           string     `json:"host"`
	Port           int        `json:"port"`
	Operation      string     `json:"operation"`
	StartTime      *time.Time `json:"start_time"`
	EndTime        *time.Time `json:"end_time"`
	LatencySeconds *float64   `json:"latency_seconds"`
	BytesSent      int64      `json:"bytes_sent"`
	BytesReceived  int64      `json:"bytes_received"`
	Status         Status     `json:"status"`
	Error          string     `json:"error"`
}
