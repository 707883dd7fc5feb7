// Package client is the Go client of pipetel's query API: one task's event
// metric, one or all of its network operations, the lists (failed, slow,
// running, by status, event name, pipeline or start time) as pages or as
// iterators over every page, the slowest N, and the retry statistics. Any
// instance answers for the whole consumer group.
//
// It shares the wire types and routes with the server (package schemas) and
// imports neither the state store nor a Kafka or Elasticsearch client.
//
//	c := client.New("http://127.0.0.1:9464")
//	failed, err := c.FailedEvents(ctx)
//
// An answer other than 200 is an *Error carrying the HTTP status and the
// API's error body.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pipetel/pipetel/schemas"
)

// Client asks one pipetel instance's query API. It is safe for concurrent
// use.
type Client struct {
	base     string
	http     *http.Client
	pageSize int
	token    string
}

// Option configures New.
type Option func(*Client)

// WithHTTPClient sets the HTTP client requests are sent with. Default: an
// http.Client with a 30 s timeout per request.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithPageSize sets the page size (1..schemas.MaxLimit) the functions that
// read every page ask for: FailedEvents, SlowEvents, FailedNetworkOps,
// SlowNetworkOps, RunningEvents, NetworkOpsOf, and the iterators when their
// Filter has no Limit. Default schemas.MaxLimit.
func WithPageSize(n int) Option { return func(c *Client) { c.pageSize = n } }

// WithToken sends "Authorization: Bearer token" with every request, for an
// API started with http.auth_token. Default: none.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// New returns a client of the API at baseURL, e.g. "http://127.0.0.1:9464".
// A bad URL is reported by the first call.
func New(baseURL string, opts ...Option) *Client {
	c := &Client{base: strings.TrimSuffix(baseURL, "/"), http: &http.Client{Timeout: 30 * time.Second},
		pageSize: schemas.MaxLimit}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Error is an answer of the API other than 200.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Message is the API's error message ("error" of its body), or the
	// body itself when it is not the API's JSON.
	Message string
	// Parameter names the query parameter at fault, when one is.
	Parameter string
	// Body is the answer's body as it came.
	Body []byte
}

func (e *Error) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status) }

// Filter selects the metrics of a list. The zero value lists every metric.
type Filter struct {
	// Status keeps the metrics of one status; empty keeps all.
	Status schemas.Status
	// SlowerThan keeps finished metrics whose duration (latency) exceeds
	// it; zero means no bound.
	SlowerThan time.Duration
	// Limit is the page size, 1..schemas.MaxLimit; zero means the API's
	// default (schemas.DefaultLimit) for one page, the client's page size
	// for the iterators.
	Limit int
	// Cursor continues after a previous page (its Next).
	Cursor string
	// Local asks for the asked instance's own partitions only, not the
	// whole group's.
	Local bool
	// EventName and PipelineID keep the events of one event name, of one
	// pipeline; empty keeps all. Network metrics carry neither: the API
	// refuses them on network lists.
	EventName, PipelineID string
	// Since and Until keep the metrics whose start time is at or after
	// Since and before Until; a zero time is no bound. Metrics without a
	// start time are left out by either.
	Since, Until time.Time
	// RunningLongerThan, when > 0, keeps the pending metrics that started
	// more than this long ago by the asked instance's clock (the open tasks
	// running that long); see RunningEvents for zero.
	RunningLongerThan time.Duration
	// Top, when > 0, asks for the Top finished metrics with the longest
	// duration (latency) across the group, longest first, in one page
	// without a cursor; Limit and Cursor must be unset.
	Top int
	// Params are further query parameters, sent as they are: filters of a
	// newer API, or values the typed fields do not carry.
	Params url.Values
}

// Query is f as the API's query parameters.
func (f Filter) Query() url.Values {
	q := url.Values{}
	for k, v := range f.Params {
		q[k] = append([]string(nil), v...)
	}
	if f.Status != "" {
		q.Set(schemas.ParamStatus, string(f.Status))
	}
	if f.SlowerThan != 0 {
		q.Set(schemas.ParamSlowerThan, f.SlowerThan.String())
	}
	if f.Limit != 0 {
		q.Set(schemas.ParamLimit, strconv.Itoa(f.Limit))
	}
	if f.Cursor != "" {
		q.Set(schemas.ParamCursor, f.Cursor)
	}
	if f.Local {
		q.Set(schemas.ParamScope, schemas.ScopeLocal)
	}
	for _, p := range []struct{ name, v string }{{schemas.ParamEventName, f.EventName}, {schemas.ParamPipelineID, f.PipelineID}} {
		if p.v != "" {
			q.Set(p.name, p.v)
		}
	}
	for _, p := range []struct {
		name string
		t    time.Time
	}{{schemas.ParamSince, f.Since}, {schemas.ParamUntil, f.Until}} {
		if !p.t.IsZero() {
			q.Set(p.name, p.t.UTC().Format(time.RFC3339Nano))
		}
	}
	if f.RunningLongerThan > 0 {
		q.Set(schemas.ParamRunningLongerThan, f.RunningLongerThan.String())
	}
	if f.Top > 0 {
		q.Set(schemas.ParamTop, strconv.Itoa(f.Top))
	}
	return q
}

// Raw returns the body of a 200 answer to GET path (one of package schemas'
// paths) with query, as the API wrote it: for callers that pass the API's
// JSON on, like pipetel query --json. Any other answer is an *Error.
func (c *Client) Raw(ctx context.Context, path string, query url.Values) ([]byte, error) {
	u := c.base + path
	if len(query) > 0 {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		u += sep + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("cannot query %q: %w", u, err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is in the message already
		}
		return nil, fmt.Errorf("cannot query %q: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("cannot read the answer of %q: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e schemas.ErrorBody
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(body))
		}
		return nil, &Error{Status: resp.StatusCode, Message: e.Error, Parameter: e.Parameter, Body: body}
	}
	return body, nil
}

// get decodes the 200 answer to path and query into out.
func (c *Client) get(ctx context.Context, path string, query url.Values, out any) error {
	body, err := c.Raw(ctx, path, query)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("cannot decode the answer to %q: %w", path, err)
	}
	return nil
}

// Get returns the event metric of a task, finished or pending. A task the
// group does not hold is an *Error with Status 404.
func (c *Client) Get(ctx context.Context, taskID string) (schemas.EventMetric, error) {
	var m schemas.EventMetric
	return m, c.get(ctx, schemas.EventPath(taskID), nil, &m)
}

// NetworkOp returns one network operation of a task; opID "" is the task's
// operation without an op_id. An unknown one is an *Error with Status 404.
func (c *Client) NetworkOp(ctx context.Context, taskID, opID string) (schemas.NetworkMetric, error) {
	var m schemas.NetworkMetric
	return m, c.get(ctx, schemas.NetworkOpPath(taskID, opID), nil, &m)
}

// NetworkOpsOf returns every network operation of a task, finished ones
// first, then pending ones, each in op id order, reading every page; none
// (an empty slice) for a task without any.
func (c *Client) NetworkOpsOf(ctx context.Context, taskID string) ([]schemas.NetworkMetric, error) {
	return collect(pages(c, Filter{}, func(f Filter) (schemas.Page[schemas.NetworkMetric], error) {
		var p schemas.Page[schemas.NetworkMetric]
		return p, c.get(ctx, schemas.NetworkOpsPath(taskID), f.Query(), &p)
	}))
}

// EventsPage returns one page of event metrics.
func (c *Client) EventsPage(ctx context.Context, f Filter) (schemas.Page[schemas.EventMetric], error) {
	var p schemas.Page[schemas.EventMetric]
	return p, c.get(ctx, schemas.PathEvents, f.Query(), &p)
}

// NetworkPage returns one page of network metrics.
func (c *Client) NetworkPage(ctx context.Context, f Filter) (schemas.Page[schemas.NetworkMetric], error) {
	var p schemas.Page[schemas.NetworkMetric]
	return p, c.get(ctx, schemas.PathNetwork, f.Query(), &p)
}

// Events iterates over the event metrics f selects, page by page from
// f.Cursor to the last page. An error is yielded once, and ends the
// iteration.
func (c *Client) Events(ctx context.Context, f Filter) iter.Seq2[schemas.EventMetric, error] {
	return pages(c, f, func(f Filter) (schemas.Page[schemas.EventMetric], error) { return c.EventsPage(ctx, f) })
}

// NetworkOps iterates over the network metrics f selects, like Events.
func (c *Client) NetworkOps(ctx context.Context, f Filter) iter.Seq2[schemas.NetworkMetric, error] {
	return pages(c, f, func(f Filter) (schemas.Page[schemas.NetworkMetric], error) { return c.NetworkPage(ctx, f) })
}

func pages[T any](c *Client, f Filter, page func(Filter) (schemas.Page[T], error)) iter.Seq2[T, error] {
	if f.Limit == 0 && f.Top == 0 {
		f.Limit = c.pageSize
	}
	return func(yield func(T, error) bool) {
		for {
			p, err := page(f)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, m := range p.Items {
				if !yield(m, nil) {
					return
				}
			}
			if p.Next == "" {
				return
			}
			f.Cursor = p.Next
		}
	}
}

func collect[T any](seq iter.Seq2[T, error]) ([]T, error) {
	out := []T{}
	for m, err := range seq {
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// FailedEvents returns every failed event (status failed; timed_out and
// orphan are statuses of their own), reading every page.
func (c *Client) FailedEvents(ctx context.Context) ([]schemas.EventMetric, error) {
	return collect(c.Events(ctx, Filter{Status: schemas.StatusFailed}))
}

// SlowEvents returns every finished event whose duration exceeds threshold
// (> 0), in the API's order, reading every page.
func (c *Client) SlowEvents(ctx context.Context, threshold time.Duration) ([]schemas.EventMetric, error) {
	if threshold <= 0 {
		return nil, fmt.Errorf("slow events: threshold %v, expected a duration > 0", threshold)
	}
	return collect(c.Events(ctx, Filter{SlowerThan: threshold}))
}

// RetryStats returns the retry statistics over the group's finished events.
func (c *Client) RetryStats(ctx context.Context) (schemas.RetrySummary, error) {
	var s schemas.RetrySummary
	return s, c.get(ctx, schemas.PathRetries, nil, &s)
}

// FailedNetworkOps returns every failed network operation, reading every
// page.
func (c *Client) FailedNetworkOps(ctx context.Context) ([]schemas.NetworkMetric, error) {
	return collect(c.NetworkOps(ctx, Filter{Status: schemas.StatusFailed}))
}

// SlowNetworkOps returns every finished network operation whose latency
// exceeds threshold (> 0), reading every page.
func (c *Client) SlowNetworkOps(ctx context.Context, threshold time.Duration) ([]schemas.NetworkMetric, error) {
	if threshold <= 0 {
		return nil, fmt.Errorf("slow network operations: threshold %v, expected a duration > 0", threshold)
	}
	return collect(c.NetworkOps(ctx, Filter{SlowerThan: threshold}))
}

// SlowestEvents returns the n (1..schemas.MaxLimit) finished events with
// the longest duration among those f selects, across the group, longest
// first (ties by task id): the API's top=n. f's Limit and Cursor must be
// unset.
func (c *Client) SlowestEvents(ctx context.Context, n int, f Filter) ([]schemas.EventMetric, error) {
	if n <= 0 {
		return nil, fmt.Errorf("slowest events: n %d, expected 1..%d", n, schemas.MaxLimit)
	}
	f.Top = n
	p, err := c.EventsPage(ctx, f)
	return p.Items, err
}

// SlowestNetworkOps is SlowestEvents for network operations, by latency.
func (c *Client) SlowestNetworkOps(ctx context.Context, n int, f Filter) ([]schemas.NetworkMetric, error) {
	if n <= 0 {
		return nil, fmt.Errorf("slowest network operations: n %d, expected 1..%d", n, schemas.MaxLimit)
	}
	f.Top = n
	p, err := c.NetworkPage(ctx, f)
	return p.Items, err
}

// RunningEvents returns the events that started more than longerThan (>= 0)
// ago and have not finished, reading every page. The API decides, by the
// asked instance's clock (the processor's), not the client's; 0 returns
// every pending event that has a start.
func (c *Client) RunningEvents(ctx context.Context, longerThan time.Duration) ([]schemas.EventMetric, error) {
	if longerThan < 0 {
		return nil, fmt.Errorf("running events: longer than %v, expected a duration >= 0", longerThan)
	}
	f := Filter{RunningLongerThan: longerThan}
	if longerThan == 0 {
		// The zero Filter field means no such filter.
		f.Params = url.Values{schemas.ParamRunningLongerThan: {"0s"}}
	}
	return collect(c.Events(ctx, f))
}
