package query

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
)

// named is evStart with an event name and a pipeline.
func named(task, name, pipeline string, sec float64) schemas.Record {
	r := evStart(task, sec)
	r.EventName, r.PipelineID = name, pipeline
	return r
}

// filterFixture serves, against a clock at at(3600):
//
//	events p0: a load/p1 0..1 s; b load/p2 10..12 s failed; r-old load/p1 started at 0, running
//	events p1: c transform/p1 20..23 s; d load/p1 30..34 s; r-mid transform/p2 started at 3300, running;
//	           r-new load/p1 started at 3590, running; end-only pending without a start
//	network p0: n1/x 0..1 s; n1/y 5..8 s failed;  network p1: n2/"" 10..12 s; n3/"" started at 3000
func filterFixture(t *testing.T) *httptest.Server {
	t.Helper()
	ev0, ev1 := state.Unit{Stream: state.Events, Partition: 0}, state.Unit{Stream: state.Events, Partition: 1}
	nt0, nt1 := state.Unit{Stream: state.Network, Partition: 0}, state.Unit{Stream: state.Network, Partition: 1}
	s := newStore(t, ev0, ev1, nt0, nt1)
	apply(t, s, ev0,
		named("a", "load", "p1", 0), evEnd("a", 1, ""),
		named("b", "load", "p2", 10), evEnd("b", 12, "boom"),
		named("r-old", "load", "p1", 0))
	apply(t, s, ev1,
		named("c", "transform", "p1", 20), evEnd("c", 23, ""),
		named("d", "load", "p1", 30), evEnd("d", 34, ""),
		named("r-mid", "transform", "p2", 3300), named("r-new", "load", "p1", 3590),
		evEnd("end-only", 100, ""))
	apply(t, s, nt0, netStart("n1", "x", 0), netEnd("n1", "x", 1, ""), netStart("n1", "y", 5), netEnd("n1", "y", 8, "reset"))
	apply(t, s, nt1, netStart("n2", "", 10), netEnd("n2", "", 12, ""), netStart("n3", "", 3000))
	mux := http.NewServeMux()
	NewAPI(s, WithClock(func() time.Time { return at(3600) })).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// q is a query with values escaped, e.g. q("since", ts(10)).
func q(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v.Encode()
}

func TestAPIFilters(t *testing.T) {
	srv := filterFixture(t)
	f := func(path string, want ...string) {
		t.Helper()
		ids, next := getPage(t, srv, path)
		if want == nil {
			want = []string{}
		}
		if strings.Join(ids, ",") != strings.Join(want, ",") || next != nil {
			t.Errorf("GET %s: %q (next %v), want %q", path, ids, next, want)
		}
	}
	// Finished by partition, then pending by partition.
	f("/api/v1/events?event_name=load", "a", "b", "d", "r-old", "r-new")
	f("/api/v1/events?event_name=load&pipeline_id=p1", "a", "d", "r-old", "r-new")
	f("/api/v1/events?pipeline_id=p2", "b", "r-mid")
	f("/api/v1/events?event_name=nope")
	f("/api/v1/events?event_name=load&status=failed", "b")
	f("/api/v1/events?event_name=load&slower_than=1s", "b", "d")
	// since is inclusive, until exclusive, on the start time; an event
	// without a start (end-only) has none to compare.
	f("/api/v1/events?"+q("since", ts(10)), "b", "c", "d", "r-mid", "r-new")
	f("/api/v1/events?"+q("until", ts(20)), "a", "b", "r-old")
	f("/api/v1/events?"+q("since", ts(10), "until", ts(30)), "b", "c")
	// An offset is as good as Z.
	f("/api/v1/events?"+q("since", at(10).In(time.FixedZone("", -5*3600)).Format(time.RFC3339)), "b", "c", "d", "r-mid", "r-new")
	f("/api/v1/network?"+q("since", ts(5)), "n1/y", "n2/", "n3/")
	f("/api/v1/network?"+q("until", ts(5), "status", "completed"), "n1/x")
}

func TestAPIRunning(t *testing.T) {
	srv := filterFixture(t)
	f := func(path string, want ...string) {
		t.Helper()
		ids, _ := getPage(t, srv, path)
		if want == nil {
			want = []string{}
		}
		if strings.Join(ids, ",") != strings.Join(want, ",") {
			t.Errorf("GET %s: %q, want %q", path, ids, want)
		}
	}
	// The clock reads at(3600): r-old started an hour before, r-mid 5
	// minutes before (not more than 5 minutes), r-new 10 s before.
	f("/api/v1/events?status=pending&running_longer_than=5m", "r-old")
	f("/api/v1/events?running_longer_than=5m", "r-old")
	f("/api/v1/events?running_longer_than=299", "r-old", "r-mid")
	f("/api/v1/events?running_longer_than=0", "r-old", "r-mid", "r-new")
	f("/api/v1/events?running_longer_than=2h")
	f("/api/v1/events?running_longer_than=1s&pipeline_id=p2", "r-mid")
	f("/api/v1/events?running_longer_than=1s&"+q("since", ts(3000)), "r-mid", "r-new")
	// until earlier than the cut-off stays; since past it leaves nothing.
	f("/api/v1/events?running_longer_than=1s&"+q("until", ts(3300)), "r-old")
	f("/api/v1/events?running_longer_than=5m&" + q("since", ts(3400)))
	f("/api/v1/network?running_longer_than=5m", "n3/")
	f("/api/v1/network?running_longer_than=15m")
}

// wantBadParam checks a 400 whose body names the parameter.
func wantBadParam(t *testing.T, srv *httptest.Server, path, param, msg string) {
	t.Helper()
	code, body := get(t, srv, path)
	want, _ := json.Marshal(map[string]string{"error": msg, "parameter": param})
	// encoding/json escapes <, > and & in Marshal; the API does not.
	wantBody := strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(string(want)) + "\n"
	if code != http.StatusBadRequest || body != wantBody {
		t.Errorf("GET %s:\n got %d %s\nwant 400 %s", path, code, body, wantBody)
	}
}

func TestAPIBadFilters(t *testing.T) {
	srv := filterFixture(t)
	const (
		times     = "an RFC 3339 time with Z or an offset, such as 2006-01-02T15:04:05Z"
		durations = "a non-negative duration such as 1.5s, 250ms or 2 (seconds)"
	)
	long := strings.Repeat("x", 513)
	tests := []struct {
		query, param, msg string
	}{
		{"since=yesterday", "since", `invalid parameter "since": got "yesterday", expected ` + times},
		{q("until", at(0).Format(time.DateTime)), "until", `invalid parameter "until": got "` + at(0).Format(time.DateTime) + `", expected ` + times},
		{q("since", ts(10), "until", ts(10)), "until", `invalid parameter "until": got "` + ts(10) + `", expected a time after since (` + ts(10) + `)`},
		{"running_longer_than=soon", "running_longer_than", `invalid parameter "running_longer_than": got "soon", expected ` + durations},
		{"running_longer_than=-1s", "running_longer_than", `invalid parameter "running_longer_than": got "-1s", expected ` + durations},
		{"running_longer_than=1s&status=failed", "status", `invalid parameter "status": got "failed", expected pending or none when running_longer_than is set: only pending metrics are running`},
		{"running_longer_than=1s&slower_than=1s", "slower_than", `invalid parameter "slower_than": got "1s", expected none with running_longer_than: running metrics have no duration`},
		{"top=0", "top", `invalid parameter "top": got "0", expected an integer 1..1000`},
		{"top=1001", "top", `invalid parameter "top": got "1001", expected an integer 1..1000`},
		{"top=ten", "top", `invalid parameter "top": got "ten", expected an integer 1..1000`},
		{"top=3&limit=3", "limit", `invalid parameter "limit": got "3", expected none with top: top=N is the size of its one page`},
		{"top=3&cursor=abc", "cursor", `invalid parameter "cursor": got "abc", expected none with top: top answers one page`},
		{"top=3&status=pending", "status", `invalid parameter "status": got "pending", expected a finished status when top is set: pending metrics have no duration`},
		{"top=3&running_longer_than=1m", "top", `invalid parameter "top": got "3", expected none with running_longer_than: running metrics have no duration`},
	}
	for _, base := range []string{"/api/v1/events", "/api/v1/network"} {
		for _, tt := range tests {
			wantBadParam(t, srv, base+"?"+tt.query, tt.param, tt.msg)
		}
	}
	wantBadParam(t, srv, "/api/v1/events?event_name="+long, "event_name", `invalid parameter "event_name": got "`+long+`", expected at most 512 bytes of UTF-8, as in records`)
	wantBadParam(t, srv, "/api/v1/events?pipeline_id=%ff", "pipeline_id", `invalid parameter "pipeline_id": got "\xff", expected at most 512 bytes of UTF-8, as in records`)
	wantBadParam(t, srv, "/api/v1/events?foo=1", "foo",
		`unknown parameter "foo": expected one of [status slower_than limit cursor event_name pipeline_id since until running_longer_than top]`)
	// Network metrics carry no event name or pipeline.
	for _, p := range []string{"event_name", "foo"} {
		wantBadParam(t, srv, "/api/v1/network?"+p+"=1", p,
			`unknown parameter "`+p+`": expected one of [status slower_than limit cursor since until running_longer_than top]`)
	}
	wantBadParam(t, srv, "/api/v1/network/n1?foo=1", "foo", `unknown parameter "foo": expected one of [op_id limit cursor]`)
	wantBadParam(t, srv, "/api/v1/network/n1?limit=0", "limit", `invalid parameter "limit": got "0", expected an integer 1..1000`)
}

func TestAPITop(t *testing.T) {
	srv := filterFixture(t)
	f := func(path string, want ...string) {
		t.Helper()
		code, body := get(t, srv, path)
		ids, next := getPage(t, srv, path)
		if want == nil {
			want = []string{}
		}
		if code != http.StatusOK || strings.Join(ids, ",") != strings.Join(want, ",") || next != nil {
			t.Errorf("GET %s: %d %q (next %v), want %q; body %s", path, code, ids, next, want, body)
		}
	}
	// Durations: d 4 s, c 3 s, b 2 s, a 1 s; running ones have none.
	f("/api/v1/events?top=2", "d", "c")
	f("/api/v1/events?top=10", "d", "c", "b", "a")
	f("/api/v1/events?top=10&event_name=load", "d", "b", "a")
	f("/api/v1/events?top=10&status=failed", "b")
	f("/api/v1/events?top=10&slower_than=2", "d", "c")
	f("/api/v1/events?top=10&"+q("since", ts(10), "until", ts(30)), "c", "b")
	f("/api/v1/network?top=2", "n1/y", "n2/")
	f("/api/v1/network?top=1&status=completed", "n2/")

	// Past the scan bound the answer is an error naming top, not a guess.
	s, err := state.Open(state.Options{NoSync: true, MaxScanKeys: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Own(evUnit); err != nil {
		t.Fatal(err)
	}
	apply(t, s, evUnit, named("a", "load", "p1", 0), evEnd("a", 1, ""), named("b", "rare", "p1", 0), evEnd("b", 0.5, ""))
	wantBadParam(t, serve(t, s), "/api/v1/events?top=1&event_name=rare", "top",
		"cannot answer top=1: the filters keep too few of the slowest metrics: 0 kept of the 1 examined, the most one query examines; narrow the filters or list them with a cursor")
}

func TestAPINetworkOpsOfTask(t *testing.T) {
	srv := filterFixture(t)
	f := func(path string, want ...string) {
		t.Helper()
		var got []string
		p := path
		for range 10 {
			ids, next := getPage(t, srv, p)
			got = append(got, ids...)
			if next == nil {
				break
			}
			p = path + "&cursor=" + url.QueryEscape(*next)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("GET %s: %q, want %q", path, got, want)
		}
	}
	f("/api/v1/network/n1?limit=100", "n1/x", "n1/y")
	f("/api/v1/network/n1?limit=1", "n1/x", "n1/y")
	f("/api/v1/network/n3?limit=5", "n3/")
	if code, body := get(t, srv, "/api/v1/network/nope"); code != http.StatusOK || body != `{"items":[]}`+"\n" {
		t.Errorf("operations of an unknown task: %d %s, want 200 and no items", code, body)
	}
	// The single-operation form is unchanged.
	if code, body := get(t, srv, "/api/v1/network/n1?op_id=y"); code != http.StatusOK || !strings.Contains(body, `"op_id":"y"`) {
		t.Errorf("one operation: %d %s", code, body)
	}
}
