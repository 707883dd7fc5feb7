package schemas

import (
	"cmp"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The query API's wire contract: its routes, parameters, page and error
// bodies, shared by the server (package query), the Go client (package
// client) and pipetel query, and importable without the store.

// Paths of the query API, version 1. A single event is at EventPath, a
// single network operation at NetworkOpPath, the network operations of a
// task at NetworkOpsPath.
const (
	PathEvents  = "/api/v1/events"
	PathNetwork = "/api/v1/network"
	PathRetries = "/api/v1/retries"
)

// Query parameters of the API.
const (
	// ParamStatus keeps the metrics of one status (lists).
	ParamStatus = "status"
	// ParamSlowerThan keeps finished metrics slower than a duration, in
	// the syntax of ParseDuration (lists).
	ParamSlowerThan = "slower_than"
	// ParamLimit is the page size, 1..MaxLimit (lists).
	ParamLimit = "limit"
	// ParamCursor continues after a previous page: its Next (lists).
	ParamCursor = "cursor"
	// ParamOpID selects a task's network operation (NetworkOpPath); without
	// it, NetworkOpsPath lists all of the task's operations.
	ParamOpID = "op_id"
	// ParamEventName and ParamPipelineID keep the event metrics of one
	// event name, of one pipeline (event lists).
	ParamEventName  = "event_name"
	ParamPipelineID = "pipeline_id"
	// ParamSince and ParamUntil keep the metrics whose start time is at or
	// after since and before until, both RFC 3339 (ParseTime); a metric
	// without a start time is left out by either (lists).
	ParamSince = "since"
	ParamUntil = "until"
	// ParamRunningLongerThan keeps the pending metrics that started more
	// than this duration (ParseDuration) ago by the asked instance's clock:
	// the open tasks running longer than that. It implies status=pending
	// (lists).
	ParamRunningLongerThan = "running_longer_than"
	// ParamTop answers the N finished metrics with the longest duration
	// (network: latency) among those the other filters keep, across the
	// group, longest first, in one page without a cursor; 1..MaxLimit, and
	// no limit or cursor with it (lists).
	ParamTop = "top"
	// ParamScope is ScopeCluster (the default) or ScopeLocal: the lists and
	// the retry statistics of the whole consumer group, or of the asked
	// instance's own partitions.
	ParamScope = "scope"
)

// Values of ParamScope.
const (
	ScopeCluster = "cluster"
	ScopeLocal   = "local"
)

// DefaultLimit and MaxLimit bound one page of a list.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// EventPath is the path of one task's event metric.
func EventPath(taskID string) string { return PathEvents + "/" + url.PathEscape(taskID) }

// NetworkOpPath is the path and query of one network operation of a task;
// opID "" is the task's operation without an op_id.
func NetworkOpPath(taskID, opID string) string {
	return PathNetwork + "/" + url.PathEscape(taskID) + "?" + ParamOpID + "=" + url.QueryEscape(opID)
}

// NetworkOpsPath is the path of the list of a task's network operations.
func NetworkOpsPath(taskID string) string { return PathNetwork + "/" + url.PathEscape(taskID) }

// Page is one page of a list; Next is empty on the last page.
type Page[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next_cursor,omitempty"`
}

// RetrySummary is the retry statistics over finished events (the Python
// library's get_retry_stats).
type RetrySummary struct {
	TotalRetries       int64            `json:"total_retries"`
	EventsWithRetries  int64            `json:"events_with_retries"`
	MaxRetries         int64            `json:"max_retries"`
	EventsByRetryCount map[string]int64 `json:"events_by_retry_count"`
}

// ErrorBody is the body of every error answer of the API. Parameter names
// the query parameter at fault, when one is.
type ErrorBody struct {
	Error     string `json:"error"`
	Parameter string `json:"parameter,omitempty"`
}

// ParseDuration reads a duration as the API takes it: a number of seconds
// ("2", "0.25") or a Go duration ("1.5s", "250ms").
func ParseDuration(v string) (time.Duration, error) {
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		// Converting NaN or an out-of-range float to an integer is
		// implementation-defined in Go: reject them instead.
		ns := secs * float64(time.Second)
		if math.IsNaN(ns) || ns >= math.MaxInt64 || ns < math.MinInt64 {
			return 0, fmt.Errorf("duration %q out of range", v)
		}
		return time.Duration(ns), nil
	}
	return time.ParseDuration(v)
}

// ParseTime reads a time as the API takes it (since, until): RFC 3339 with
// an offset or Z, as records carry it, e.g. 2006-01-02T15:04:05.5Z.
func ParseTime(v string) (time.Time, error) {
	t, ok := parseRFC3339([]byte(v))
	if !ok {
		return time.Time{}, fmt.Errorf("time %q is not RFC 3339", v)
	}
	return t, nil
}

// CompareSlowerEvent orders the event metrics of a top answer: the longer
// duration first (a metric without one last), then by task id.
func CompareSlowerEvent(a, b EventMetric) int {
	if c := compareLonger(a.DurationSeconds, b.DurationSeconds); c != 0 {
		return c
	}
	return strings.Compare(a.TaskID, b.TaskID)
}

// CompareSlowerNetwork is CompareSlowerEvent for network metrics, by
// latency, then task id, then op id.
func CompareSlowerNetwork(a, b NetworkMetric) int {
	if c := compareLonger(a.LatencySeconds, b.LatencySeconds); c != 0 {
		return c
	}
	if c := strings.Compare(a.TaskID, b.TaskID); c != 0 {
		return c
	}
	return strings.Compare(a.OpID, b.OpID)
}

func compareLonger(a, b *float64) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	return cmp.Compare(*b, *a)
}
