package schemas

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"time"
)

// The query API's wire contract: its routes, parameters, page and error
// bodies, shared by the server (package query), the Go client (package
// client) and pipetel query, and importable without the store.

// Paths of the query API, version 1. A single event is at EventPath, a
// single network operation at NetworkOpPath.
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
	// ParamOpID selects a task's network operation (NetworkOpPath).
	ParamOpID = "op_id"
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
