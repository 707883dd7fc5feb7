package query

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
)

// apiFixture fills two event and two network partitions through the join:
//
//	events p0: done-1 completed 1.5 s; fail-1 failed 2 s with 2 retries; pend-end pending (end only)
//	events p1: slow-1 completed 3 s; "a/b c" completed 0.5 s with 1 retry; pend-start pending (start only)
//	network p0: n1/"" completed 0.5 s; n1/op2 failed 2 s
//	network p1: n2/"" completed 1.5 s; n3/x completed 4 s; n4/"" pending
//
// ts is at(sec) as the API prints it.
func ts(sec float64) string { return at(sec).Format(time.RFC3339Nano) }

func apiFixture(t *testing.T) *httptest.Server {
	t.Helper()
	ev0, ev1 := state.Unit{Stream: state.Events, Partition: 0}, state.Unit{Stream: state.Events, Partition: 1}
	nt0, nt1 := state.Unit{Stream: state.Network, Partition: 0}, state.Unit{Stream: state.Network, Partition: 1}
	s := newStore(t, ev0, ev1, nt0, nt1)
	apply(t, s, ev0,
		evStart("done-1", 0), evEnd("done-1", 1.5, ""),
		evStart("fail-1", 0), evRetry("fail-1", 0.5), evRetry("fail-1", 1), evEnd("fail-1", 2, "boom"),
		evEnd("pend-end", 5, ""))
	apply(t, s, ev1,
		evStart("slow-1", 0), evEnd("slow-1", 3, ""),
		evStart("a/b c", 0), evRetry("a/b c", 0.25), evEnd("a/b c", 0.5, ""),
		evStart("pend-start", 1))
	apply(t, s, nt0,
		netStart("n1", "", 0), netEnd("n1", "", 0.5, ""),
		netStart("n1", "op2", 0), netEnd("n1", "op2", 2, "reset"))
	apply(t, s, nt1,
		netStart("n2", "", 0), netEnd("n2", "", 1.5, ""),
		netStart("n3", "x", 0), netEnd("n3", "x", 4, ""),
		netStart("n4", "", 0))
	return serve(t, s)
}

func serve(t *testing.T, s *state.Store) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	NewAPI(s).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q, want application/json", path, ct)
	}
	return resp.StatusCode, string(body)
}

// getPage fetches a list page and returns its items' ids and its cursor.
func getPage(t *testing.T, srv *httptest.Server, path string) (ids []string, next *string) {
	t.Helper()
	code, body := get(t, srv, path)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	var page struct {
		Items []struct {
			TaskID string  `json:"task_id"`
			OpID   *string `json:"op_id"`
		} `json:"items"`
		Next *string `json:"next_cursor"`
	}
	if err := json.Unmarshal([]byte(body), &page); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
	if page.Items == nil {
		t.Fatalf("GET %s: items is not an array: %s", path, body)
	}
	ids = []string{}
	for _, it := range page.Items {
		id := it.TaskID
		if it.OpID != nil {
			id += "/" + *it.OpID
		}
		ids = append(ids, id)
	}
	return ids, page.Next
}

func TestAPIEvent(t *testing.T) {
	srv := apiFixture(t)
	tests := []struct {
		path string
		want map[string]any
	}{
		{"/api/v1/events/done-1", map[string]any{
			"task_id": "done-1", "event_name": "ingest", "pipeline_id": "pl-1", "process_id": 42.0,
			"start_time": ts(0), "end_time": ts(1.5), "duration_seconds": 1.5,
			"status": "completed", "error": "", "retry_count": 0.0,
		}},
		{"/api/v1/events/fail-1", map[string]any{
			"task_id": "fail-1", "event_name": "ingest", "pipeline_id": "pl-1", "process_id": 42.0,
			"start_time": ts(0), "end_time": ts(2), "duration_seconds": 2.0,
			"status": "failed", "error": "boom", "retry_count": 2.0,
		}},
		{"/api/v1/events/pend-end", map[string]any{
			"task_id": "pend-end", "event_name": "", "pipeline_id": "", "process_id": nil,
			"start_time": nil, "end_time": ts(5), "duration_seconds": nil,
			"status": "pending", "error": "", "retry_count": 0.0,
		}},
		{"/api/v1/events/pend-start", map[string]any{
			"task_id": "pend-start", "event_name": "ingest", "pipeline_id": "pl-1", "process_id": 42.0,
			"start_time": ts(1), "end_time": nil, "duration_seconds": nil,
			"status": "pending", "error": "", "retry_count": 0.0,
		}},
		// The {task_id...} wildcard takes "/" literally or escaped, and
		// spaces escaped.
		{"/api/v1/events/a/b%20c", map[string]any{
			"task_id": "a/b c", "event_name": "ingest", "pipeline_id": "pl-1", "process_id": 42.0,
			"start_time": ts(0), "end_time": ts(0.5), "duration_seconds": 0.5,
			"status": "completed", "error": "", "retry_count": 1.0,
		}},
		{"/api/v1/events/" + url.PathEscape("a/b c"), map[string]any{
			"task_id": "a/b c", "event_name": "ingest", "pipeline_id": "pl-1", "process_id": 42.0,
			"start_time": ts(0), "end_time": ts(0.5), "duration_seconds": 0.5,
			"status": "completed", "error": "", "retry_count": 1.0,
		}},
		{"/api/v1/network/n1?op_id=op2", map[string]any{
			"task_id": "n1", "op_id": "op2", "host": "db.internal", "port": 5432.0, "operation": "query",
			"start_time": ts(0), "end_time": ts(2), "latency_seconds": 2.0,
			"bytes_sent": 100.0, "bytes_received": 2000.0, "status": "failed", "error": "reset",
		}},
		// op_id= (empty) is the task's operation without an op_id.
		{"/api/v1/network/n4?op_id=", map[string]any{
			"task_id": "n4", "op_id": "", "host": "db.internal", "port": 5432.0, "operation": "query",
			"start_time": ts(0), "end_time": nil, "latency_seconds": nil,
			"bytes_sent": 0.0, "bytes_received": 0.0, "status": "pending", "error": "",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			code, body := get(t, srv, tt.path)
			if code != http.StatusOK {
				t.Fatalf("status %d, want 200; body %s", code, body)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			for _, k := range slices.Sorted(func(yield func(string) bool) {
				for k := range tt.want {
					if !yield(k) {
						return
					}
				}
			}) {
				if g, ok := got[k]; !ok || !reflect.DeepEqual(g, tt.want[k]) {
					t.Errorf("field %s: got %#v (present %v), want %#v", k, g, ok, tt.want[k])
				}
			}
			for k := range got {
				if _, ok := tt.want[k]; !ok {
					t.Errorf("unexpected field %s: %#v", k, got[k])
				}
			}
		})
	}
}

func TestAPINotFound(t *testing.T) {
	srv := apiFixture(t)
	tests := []struct{ path, body string }{
		{"/api/v1/events/x", `{"error":"no event with task_id \"x\""}`},
		{"/api/v1/events/no%20such/task", `{"error":"no event with task_id \"no such/task\""}`},
		// An op id that the task does not have.
		{"/api/v1/network/n1?op_id=zz", `{"error":"no network operation with task_id \"n1\" and op_id \"zz\""}`},
		// n3 has only op "x".
		{"/api/v1/network/n3?op_id=", `{"error":"no network operation with task_id \"n3\" and op_id \"\""}`},
	}
	for _, tt := range tests {
		code, body := get(t, srv, tt.path)
		if code != http.StatusNotFound || body != tt.body+"\n" {
			t.Errorf("GET %s: %d %s, want 404 %s", tt.path, code, body, tt.body)
		}
	}
}

func TestAPIList(t *testing.T) {
	srv := apiFixture(t)
	tests := []struct {
		path string
		want []string // sorted ids; network ids are task/op
	}{
		{"/api/v1/events", []string{"a/b c", "done-1", "fail-1", "pend-end", "pend-start", "slow-1"}},
		{"/api/v1/events?status=pending", []string{"pend-end", "pend-start"}},
		{"/api/v1/events?status=completed", []string{"a/b c", "done-1", "slow-1"}},
		{"/api/v1/events?status=failed", []string{"fail-1"}},
		{"/api/v1/events?status=timed_out", []string{}},
		{"/api/v1/events?status=orphan", []string{}},
		// slower_than is strict: fail-1 takes exactly 2 s, done-1 exactly 1.5 s.
		{"/api/v1/events?slower_than=1.5s", []string{"fail-1", "slow-1"}},
		{"/api/v1/events?slower_than=1500ms", []string{"fail-1", "slow-1"}},
		{"/api/v1/events?slower_than=2", []string{"slow-1"}},
		{"/api/v1/events?slower_than=1.4", []string{"done-1", "fail-1", "slow-1"}},
		{"/api/v1/events?slower_than=1s&status=failed", []string{"fail-1"}},
		{"/api/v1/events?slower_than=1s&status=completed", []string{"done-1", "slow-1"}},
		{"/api/v1/events?slower_than=3s", []string{}},
		// The largest duration: nothing is slower, and the bound must not
		// wrap around to "everything".
		{"/api/v1/events?slower_than=2562047h47m16.854775807s", []string{}},
		{"/api/v1/network", []string{"n1/", "n1/op2", "n2/", "n3/x", "n4/"}},
		{"/api/v1/network?status=failed", []string{"n1/op2"}},
		{"/api/v1/network?status=pending", []string{"n4/"}},
		{"/api/v1/network?status=completed", []string{"n1/", "n2/", "n3/x"}},
		{"/api/v1/network?status=timed_out", []string{}},
		{"/api/v1/network?status=orphan", []string{}},
		{"/api/v1/network?slower_than=1s", []string{"n1/op2", "n2/", "n3/x"}},
		{"/api/v1/network?slower_than=1.5", []string{"n1/op2", "n3/x"}},
	}
	for _, tt := range tests {
		ids, next := getPage(t, srv, tt.path)
		slices.Sort(ids)
		if !slices.Equal(ids, tt.want) {
			t.Errorf("GET %s: %q, want %q", tt.path, ids, tt.want)
		}
		if next != nil {
			t.Errorf("GET %s: next_cursor %q on the only page", tt.path, *next)
		}
	}
}

func TestAPIBadParameters(t *testing.T) {
	srv := apiFixture(t)
	const durations = "a non-negative duration such as 1.5s, 250ms or 2 (seconds)"
	tests := []struct {
		query, param, msg string
	}{
		{"status=bogus", "status", `invalid parameter "status": got "bogus", expected one of pending, completed, failed, timed_out, orphan`},
		{"status=", "", ""}, // empty means no filter
		{"slower_than=abc", "slower_than", `invalid parameter "slower_than": got "abc", expected ` + durations},
		{"slower_than=-1s", "slower_than", `invalid parameter "slower_than": got "-1s", expected ` + durations},
		{"slower_than=-0.5", "slower_than", `invalid parameter "slower_than": got "-0.5", expected ` + durations},
		{"slower_than=1e300", "slower_than", `invalid parameter "slower_than": got "1e300", expected ` + durations},
		{"slower_than=NaN", "slower_than", `invalid parameter "slower_than": got "NaN", expected ` + durations},
		{"limit=0", "limit", `invalid parameter "limit": got "0", expected an integer 1..1000`},
		{"limit=1001", "limit", `invalid parameter "limit": got "1001", expected an integer 1..1000`},
		{"limit=x", "limit", `invalid parameter "limit": got "x", expected an integer 1..1000`},
		{"cursor=!!!", "cursor", `cannot continue from cursor "!!!": invalid cursor`},
		{"status=pending&slower_than=1s", "status", `invalid parameter "status": got "pending", expected a finished status when slower_than is set: pending metrics have no duration`},
	}
	for _, base := range []string{"/api/v1/events", "/api/v1/network"} {
		for _, tt := range tests {
			path := base + "?" + tt.query
			code, body := get(t, srv, path)
			if tt.msg == "" {
				if code != http.StatusOK {
					t.Errorf("GET %s: %d %s, want 200", path, code, body)
				}
				continue
			}
			want, _ := json.Marshal(map[string]string{"error": tt.msg, "parameter": tt.param})
			// encoding/json escapes <, > and & in Marshal; the API does not.
			wantBody := strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(string(want)) + "\n"
			if code != http.StatusBadRequest || body != wantBody {
				t.Errorf("GET %s:\n got %d %s\nwant 400 %s", path, code, body, wantBody)
			}
		}
	}
	for _, path := range []string{"/api/v1/events/done-1?foo=1", "/api/v1/retries?foo=1"} {
		code, body := get(t, srv, path)
		want := `{"error":"unknown parameter \"foo\": expected no parameters","parameter":"foo"}` + "\n"
		if code != http.StatusBadRequest || body != want {
			t.Errorf("GET %s: %d %s, want 400 %s", path, code, body, want)
		}
	}
	code, body := get(t, srv, "/api/v1/network/n1?op_id=&foo=1")
	want := `{"error":"unknown parameter \"foo\": expected one of [op_id]","parameter":"foo"}` + "\n"
	if code != http.StatusBadRequest || body != want {
		t.Errorf("GET network op with foo: %d %s, want 400 %s", code, body, want)
	}
}

func TestAPIRetries(t *testing.T) {
	srv := apiFixture(t)
	code, body := get(t, srv, "/api/v1/retries")
	want := `{"total_retries":3,"events_with_retries":2,"max_retries":2,"events_by_retry_count":{"0":2,"1":1,"2":1}}` + "\n"
	if code != http.StatusOK || body != want {
		t.Fatalf("GET /api/v1/retries: %d %s, want 200 %s", code, body, want)
	}

	empty := serve(t, newStore(t, evUnit))
	code, body = get(t, empty, "/api/v1/retries")
	want = `{"total_retries":0,"events_with_retries":0,"max_retries":0,"events_by_retry_count":{}}` + "\n"
	if code != http.StatusOK || body != want {
		t.Fatalf("GET /api/v1/retries on an empty store: %d %s, want 200 %s", code, body, want)
	}
}

// TestAPIPagination lists 250 finished events spread over two partitions
// with limit=100 and expects pages of 100, 100 and 50 that together hold
// every event once.
func TestAPIPagination(t *testing.T) {
	units := []state.Unit{{Stream: state.Events, Partition: 0}, {Stream: state.Events, Partition: 1}}
	s := newStore(t, units...)
	all := make([]string, 0, 250)
	for p, u := range units {
		var recs []schemas.Record
		for i := range 125 {
			id := fmt.Sprintf("task-%d-%03d", p, i)
			all = append(all, id)
			// Durations 0.01..1.25 s, and every third event failed, so
			// the filtered lists page too.
			errText := ""
			if i%3 == 0 {
				errText = "boom"
			}
			recs = append(recs, evStart(id, 0), evEnd(id, float64(i+1)/100, errText))
		}
		apply(t, s, u, recs...)
	}
	srv := serve(t, s)

	tests := []struct {
		query string
		pages []int
		want  func(id string) bool
	}{
		{"limit=100", []int{100, 100, 50}, func(string) bool { return true }},
		{"limit=100&status=completed", []int{100, 66}, func(id string) bool {
			var p, i int
			fmt.Sscanf(id, "task-%d-%d", &p, &i)
			return i%3 != 0
		}},
		{"limit=40&status=failed", []int{40, 40, 4}, func(id string) bool {
			var p, i int
			fmt.Sscanf(id, "task-%d-%d", &p, &i)
			return i%3 == 0
		}},
		{"limit=100&slower_than=1s", []int{50}, func(id string) bool {
			var p, i int
			fmt.Sscanf(id, "task-%d-%d", &p, &i)
			return i+1 > 100
		}},
		{"limit=7&slower_than=1s", []int{7, 7, 7, 7, 7, 7, 7, 1}, func(id string) bool {
			var p, i int
			fmt.Sscanf(id, "task-%d-%d", &p, &i)
			return i+1 > 100
		}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			var want []string
			for _, id := range all {
				if tt.want(id) {
					want = append(want, id)
				}
			}
			var got []string
			var sizes []int
			seen := map[string]bool{}
			cursor := ""
			for range 100 {
				path := "/api/v1/events?" + tt.query
				if cursor != "" {
					path += "&cursor=" + url.QueryEscape(cursor)
				}
				ids, next := getPage(t, srv, path)
				sizes = append(sizes, len(ids))
				for _, id := range ids {
					if seen[id] {
						t.Errorf("%s appears on two pages", id)
					}
					seen[id] = true
				}
				got = append(got, ids...)
				if next == nil {
					break
				}
				if *next == "" {
					t.Fatalf("next_cursor present but empty")
				}
				cursor = *next
			}
			if !slices.Equal(sizes, tt.pages) {
				t.Errorf("page sizes %v, want %v", sizes, tt.pages)
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("listed %d events, want %d; missing or extra: got %q", len(got), len(want), got)
			}
		})
	}
}

// TestAPIInternalErrorsStayInTheLog: a store failure answers 500 with a
// fixed message; the cause, which may name state keys, is only logged.
func TestAPIInternalErrorsStayInTheLog(t *testing.T) {
	s, err := state.Open(state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	mux := http.NewServeMux()
	NewAPI(s, WithAPILogger(slog.New(slog.NewTextHandler(&logs, nil)))).Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	s.Close() // every read fails from now on
	for _, path := range []string{"/api/v1/events/t1", "/api/v1/network/t1", "/api/v1/events?status=failed", "/api/v1/retries"} {
		code, body := get(t, srv, path)
		if code != http.StatusInternalServerError || body != `{"error":"`+errInternalAnswer+`"}`+"\n" {
			t.Errorf("%s: %d %s, want 500 with the fixed message", path, code, body)
		}
	}
	if n := strings.Count(logs.String(), "cannot answer a query"); n != 4 {
		t.Errorf("%d causes logged, want 4:\n%s", n, logs.String())
	}
}
