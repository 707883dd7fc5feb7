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
	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/schemas"
)

func TestRunningEvents(t *testing.T) {
	base, stop := newServer()
	defer stop()
	c := client.New(base, client.WithClock(testclock.Now), client.WithPageSize(1))
	for _, tc := range []struct {
		longerThan time.Duration
		want       string
	}{{5 * time.Minute, "t-4"}, {2 * time.Hour, ""}} {
		got, err := client.New(base, client.WithClock(testclock.Now)).RunningEvents(context.Background(), tc.longerThan)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range got {
			ids = append(ids, m.TaskID)
		}
		if strings.Join(ids, ",") != tc.want {
			t.Errorf("RunningEvents(%v) = %q, want %q", tc.longerThan, ids, tc.want)
		}
	}
	// Every page is read: one event per page here.
	got, err := c.RunningEvents(context.Background(), 0)
	if err != nil || len(got) != 1 {
		t.Errorf("RunningEvents(0) with one event per page: %v, %v", got, err)
	}
}

func TestFilterQuery(t *testing.T) {
	f := client.Filter{Status: schemas.StatusFailed, SlowerThan: 1500 * time.Millisecond, Limit: 7, Cursor: "c.x", Local: true,
		Params: url.Values{"event_name": {"ingest"}}}
	if got, want := f.Query().Encode(), "cursor=c.x&event_name=ingest&limit=7&scope=local&slower_than=1.5s&status=failed"; got != want {
		t.Errorf("Query() = %q, want %q", got, want)
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
