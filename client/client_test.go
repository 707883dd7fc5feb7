package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pipetel/pipetel/client"
	"github.com/pipetel/pipetel/schemas"
)

func TestRunningEvents(t *testing.T) {
	base, stop := newServer()
	defer stop()
	// t-4 started an hour before the server's clock; the client's clock
	// plays no part.
	for _, pageSize := range []int{1, 100} {
		c := client.New(base, client.WithPageSize(pageSize))
		for _, tc := range []struct {
			longerThan time.Duration
			want       string
		}{{5 * time.Minute, "t-4"}, {59 * time.Minute, "t-4"}, {61 * time.Minute, ""}, {0, "t-4"}} {
			got, err := c.RunningEvents(context.Background(), tc.longerThan)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, m := range got {
				ids = append(ids, m.TaskID)
			}
			if strings.Join(ids, ",") != tc.want || got == nil {
				t.Errorf("RunningEvents(%v), pages of %d: %q, want %q", tc.longerThan, pageSize, ids, tc.want)
			}
		}
	}
	if _, err := client.New(base).RunningEvents(context.Background(), -time.Second); err == nil ||
		err.Error() != "running events: longer than -1s, expected a duration >= 0" {
		t.Errorf("RunningEvents(-1s): %v", err)
	}
}

func TestSlowestAndFilters(t *testing.T) {
	base, stop := newServer()
	defer stop()
	c := client.New(base, client.WithPageSize(1))
	ctx := context.Background()
	f := func(what string, got []schemas.EventMetric, err error, want string) {
		t.Helper()
		var ids []string
		for _, m := range got {
			ids = append(ids, m.TaskID)
		}
		if err != nil || strings.Join(ids, ",") != want {
			t.Errorf("%s: %q, %v; want %q", what, ids, err, want)
		}
	}
	got, err := c.SlowestEvents(ctx, 2, client.Filter{})
	f("SlowestEvents(2)", got, err, "t-3,t-2")
	got, err = c.SlowestEvents(ctx, 10, client.Filter{Status: schemas.StatusCompleted})
	f("SlowestEvents(10, completed)", got, err, "t-3,t-1")
	got, err = collect(c.Events(ctx, client.Filter{Top: 1}))
	f("Events with Top", got, err, "t-3")
	got, err = collect(c.Events(ctx, client.Filter{EventName: "transform", PipelineID: "nightly", Since: at(0), Until: at(1)}))
	f("Events by name, pipeline and start", got, err, "t-1,t-2,t-3,t-4")
	got, err = collect(c.Events(ctx, client.Filter{EventName: "load"}))
	f("Events of another name", got, err, "")
	got, err = collect(c.Events(ctx, client.Filter{Since: at(0.5)}))
	f("Events started later", got, err, "")
	ops, err := c.SlowestNetworkOps(ctx, 2, client.Filter{})
	if err != nil || len(ops) != 2 || ops[0].TaskID != "t-2" || ops[1].OpID != "q1" {
		t.Errorf("SlowestNetworkOps(2): %+v, %v", ops, err)
	}
	if _, err := c.SlowestEvents(ctx, 0, client.Filter{}); err == nil || err.Error() != "slowest events: n 0, expected 1..1000" {
		t.Errorf("SlowestEvents(0): %v", err)
	}
	// The API's 400 for a filter network metrics do not carry.
	_, err = c.NetworkPage(ctx, client.Filter{EventName: "transform"})
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || apiErr.Parameter != schemas.ParamEventName {
		t.Errorf("network list by event name: %v, want a 400 naming event_name", err)
	}
	for task, want := range map[string]int{"t-1": 2, "t-2": 1, "t-4": 0} {
		ops, err := c.NetworkOpsOf(ctx, task)
		if err != nil || len(ops) != want || ops == nil {
			t.Errorf("NetworkOpsOf(%s): %d, %v; want %d", task, len(ops), err, want)
		}
	}
}

func collect[T any](seq func(func(T, error) bool)) ([]T, error) {
	var out []T
	for m, err := range seq {
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func TestFilterQuery(t *testing.T) {
	f := client.Filter{Status: schemas.StatusFailed, SlowerThan: 1500 * time.Millisecond, Limit: 7, Cursor: "c.x", Local: true,
		Params: url.Values{"foo": {"bar"}}}
	if got, want := f.Query().Encode(), "cursor=c.x&foo=bar&limit=7&scope=local&slower_than=1.5s&status=failed"; got != want {
		t.Errorf("Query() = %q, want %q", got, want)
	}
	since := at(0.5).In(time.FixedZone("", 3600))
	f = client.Filter{EventName: "ingest", PipelineID: "nightly", Since: since, Until: at(2), RunningLongerThan: 90 * time.Second, Top: 3}
	want := url.Values{"event_name": {"ingest"}, "pipeline_id": {"nightly"}, "since": {at(0.5).UTC().Format(time.RFC3339Nano)},
		"until": {at(2).UTC().Format(time.RFC3339Nano)}, "running_longer_than": {"1m30s"}, "top": {"3"}}
	if got := f.Query(); got.Encode() != want.Encode() {
		t.Errorf("Query() = %q, want %q", got.Encode(), want.Encode())
	}
	// The API reads back the times the client sends, to the nanosecond.
	for _, tm := range []time.Time{since, at(0).Add(1), at(1e-9 * 123456789)} {
		if back, err := schemas.ParseTime(client.Filter{Since: tm}.Query().Get(schemas.ParamSince)); err != nil || !back.Equal(tm) {
			t.Errorf("Since %v: the API reads %v, %v", tm, back, err)
		}
	}
	// The API reads back the duration the client sends, to the nanosecond.
	for _, d := range []time.Duration{1, 250 * time.Millisecond, 90 * time.Minute, 1500*time.Millisecond + 3} {
		if back, err := schemas.ParseDuration(client.Filter{SlowerThan: d}.Query().Get(schemas.ParamSlowerThan)); err != nil || back != d {
			t.Errorf("SlowerThan %v: the API reads %v, %v", d, back, err)
		}
	}
	if q := (client.Filter{}).Query(); len(q) != 0 {
		t.Errorf("zero Filter: %v, want no parameters", q)
	}
}

func TestIteratorStopsAtAnError(t *testing.T) {
	base, stop := newServer()
	defer stop()
	c := client.New(base)
	n := 0
	var last error
	for _, err := range c.Events(context.Background(), client.Filter{Limit: 2000}) {
		n++
		last = err
	}
	var apiErr *client.Error
	if n != 1 || !errors.As(last, &apiErr) || apiErr.Status != http.StatusBadRequest || apiErr.Parameter != schemas.ParamLimit {
		t.Errorf("limit 2000: %d yields, last %v; want one *Error 400 naming limit", n, last)
	}
	// Breaking out of the loop early is fine.
	for range c.Events(context.Background(), client.Filter{Limit: 1}) {
		break
	}
}

func TestRawIsTheAPIsBody(t *testing.T) {
	base, stop := newServer()
	defer stop()
	c := client.New(base + "/")
	body, err := c.Raw(context.Background(), schemas.PathRetries, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"total_retries":3,"events_with_retries":2,"max_retries":2,"events_by_retry_count":{"0":1,"1":1,"2":1}}` + "\n"; string(body) != want {
		t.Errorf("Raw retries: %q, want %q", body, want)
	}
	body, err = c.Raw(context.Background(), schemas.PathEvents+"?status=failed", url.Values{"limit": {"1"}})
	if err != nil || !strings.HasPrefix(string(body), `{"items":[{"task_id":"t-2",`) {
		t.Errorf("Raw failed events: %s, %v", body, err)
	}
	_, err = c.Raw(context.Background(), schemas.NetworkOpPath("t-1", "nope"), nil)
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound || !strings.HasPrefix(string(apiErr.Body), `{"error":`) ||
		err.Error() != `no network operation with task_id "t-1" and op_id "nope" (HTTP 404)` {
		t.Errorf("Raw of an unknown operation: %v", err)
	}
}

func TestUnreachable(t *testing.T) {
	_, err := client.New("http://127.0.0.1:1").Get(context.Background(), "t-1")
	if err == nil || !strings.HasPrefix(err.Error(), `cannot query "http://127.0.0.1:1/api/v1/events/t-1": `) {
		t.Errorf("unreachable: %v", err)
	}
	if _, err := client.New("http://127.0.0.1:1").SlowEvents(context.Background(), 0); err == nil {
		t.Error("SlowEvents(0): no error")
	}
}
