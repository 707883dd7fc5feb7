package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pipetel/pipetel/internal/testbroker"
	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
)

// getRaw fetches path from the instance and returns the status and body.
func (a *runningApp) getRaw(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + a.Addr() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(body)
}

// listPaged pages through a list endpoint with limit and returns every
// item, failing on a page over the limit.
func listPaged[T any](t *testing.T, a *runningApp, path string, limit int) []T {
	t.Helper()
	var all []T
	cursor := ""
	for range 10000 {
		u := fmt.Sprintf("%s?limit=%d", path, limit)
		if strings.Contains(path, "?") {
			u = fmt.Sprintf("%s&limit=%d", path, limit)
		}
		if cursor != "" {
			u += "&cursor=" + url.QueryEscape(cursor)
		}
		var page schemas.Page[T]
		if code := a.getJSON(t, u, &page); code != http.StatusOK {
			t.Fatalf("GET %s: status %d", u, code)
		}
		if len(page.Items) > limit {
			t.Fatalf("GET %s: %d items over limit %d", u, len(page.Items), limit)
		}
		all = append(all, page.Items...)
		if page.Next == "" {
			return all
		}
		cursor = page.Next
	}
	t.Fatalf("GET %s: paging does not end", path)
	return nil
}

// TestClusterView runs two instances in one group and asks each of them
// about every task: both answer for the whole group.
func TestClusterView(t *testing.T) {
	const partitions, n = 8, 300
	b := testbroker.Start(t)
	tt := newTestTopics(t, b, partitions)
	x := startApp(t, testConfig(b, tt, filepath.Join(t.TempDir(), "x")))
	y := startApp(t, testConfig(b, tt, filepath.Join(t.TempDir(), "y")))
	apps := []*runningApp{x, y}
	waitFor(t, 60*time.Second, "two instances to split the partitions", func() (bool, string) {
		ex, ey := x.Store().Owned(state.Events), y.Store().Owned(state.Events)
		nx, ny := x.Store().Owned(state.Network), y.Store().Owned(state.Network)
		return len(ex) > 0 && len(ey) > 0 && len(ex)+len(ey) == partitions && len(nx)+len(ny) == partitions,
			fmt.Sprintf("events %v | %v, network %v | %v", ex, ey, nx, ny)
	})

	clock := &fakeClock{}
	p := newProducer(t, b, tt, clock)
	s := scenario{prefix: "clu", base: testclock.Now().Add(-time.Hour).Truncate(time.Millisecond)}
	s.emit(t, p, clock, 0, n)
	want := s.expect(n)
	waitFor(t, 60*time.Second, "every task and operation finished", func() (bool, string) {
		var ev, nw float64
		for _, a := range apps {
			f := a.scrape(t)
			ev += sumMetric(f, "pipetel_finished_total", map[string]string{"stream": "events"})
			nw += sumMetric(f, "pipetel_finished_total", map[string]string{"stream": "network"})
		}
		return ev == n && nw == float64(want.ops), fmt.Sprintf("events %v network %v", ev, nw)
	})
	wantRetries, _ := json.Marshal(schemas.RetrySummary{TotalRetries: int64(want.retries), EventsWithRetries: int64(want.withRetries),
		MaxRetries: int64(want.maxRetries), EventsByRetryCount: want.byRetryCount})
	// The routing tables follow the group within their TTL.
	waitFor(t, 30*time.Second, "both instances to answer for the whole group", func() (bool, string) {
		cx, bx := x.getRaw(t, "/api/v1/retries")
		cy, by := y.getRaw(t, "/api/v1/retries")
		return cx == 200 && cy == 200 && bx == string(wantRetries)+"\n" && by == bx, bx + " | " + by
	})

	t.Run("every task from either instance", func(t *testing.T) {
		for i := range n {
			paths := []string{"/api/v1/events/" + s.taskID(i)}
			if s.hasOp(i) {
				paths = append(paths, "/api/v1/network/"+s.taskID(i)+"?op_id=q1")
			}
			var bodies []string
			for _, path := range paths {
				cx, bx := x.getRaw(t, path)
				cy, by := y.getRaw(t, path)
				if cx != http.StatusOK || cy != http.StatusOK || bx != by {
					t.Fatalf("GET %s: %d %s from one instance, %d %s from the other", path, cx, bx, cy, by)
				}
				bodies = append(bodies, bx)
			}
			var m schemas.EventMetric
			must(t, json.Unmarshal([]byte(bodies[0]), &m))
			s.checkEvent(t, i, m)
		}
	})

	t.Run("lists from either instance", func(t *testing.T) {
		for _, a := range apps {
			events := listPaged[schemas.EventMetric](t, a, "/api/v1/events", 37)
			seen := map[string]int{}
			for _, m := range events {
				seen[m.TaskID]++
			}
			if len(events) != n || len(seen) != n {
				t.Errorf("instance %s lists %d events, %d distinct, want %d", a.Addr(), len(events), len(seen), n)
			}
			for i := range n {
				if seen[s.taskID(i)] != 1 {
					t.Errorf("instance %s lists %s %d times", a.Addr(), s.taskID(i), seen[s.taskID(i)])
				}
			}
			count := func(path string) int { return len(listPaged[json.RawMessage](t, a, path, 37)) }
			for _, c := range []struct {
				path string
				want int
			}{
				{"/api/v1/events?status=failed", want.failed},
				{"/api/v1/events?status=completed", want.completed},
				{"/api/v1/events?slower_than=1.5s", want.slowerThan1500ms},
				{"/api/v1/network", want.ops},
				{"/api/v1/network?status=failed", want.opsFailed},
				{"/api/v1/network?slower_than=1s", want.opsSlowerThan1s},
			} {
				if got := count(c.path); got != c.want {
					t.Errorf("instance %s: GET %s lists %d, want %d", a.Addr(), c.path, got, c.want)
				}
			}
		}
	})

	t.Run("retries", func(t *testing.T) {
		for _, a := range apps {
			if code, body := a.getRaw(t, "/api/v1/retries"); code != http.StatusOK || body != string(wantRetries)+"\n" {
				t.Errorf("instance %s: %d %s, want %s", a.Addr(), code, body, wantRetries)
			}
		}
	})

	t.Run("pipetel query", func(t *testing.T) {
		// A task that the asked instance does not hold, so the answer
		// crosses to the other one; task 3 of every 10 failed.
		task := -1
		for i := 3; i < n && task < 0; i += 10 {
			if _, found, err := x.Store().Event(s.taskID(i)); err == nil && !found {
				task = i
			}
		}
		if task < 0 {
			t.Fatal("the first instance holds every failed task")
		}
		bin := buildPipetel(t)
		query := func(args ...string) (string, string, error) {
			var out, errOut bytes.Buffer
			err := runPipetel(context.Background(), bin, append([]string{"query", "--addr", x.Addr()}, args...), &out, &errOut)
			return out.String(), errOut.String(), err
		}
		// failed is the error answer as pipetel query prints it: exit
		// status 1 and the API's message on stderr.
		failed := func(what string, args ...string) {
			t.Helper()
			_, stderr, err := query(args...)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 || stderr != "pipetel: "+what+"\n" {
				t.Errorf("query %v: %v, stderr %q, want exit status 1 and %q", args, err, stderr, "pipetel: "+what)
			}
		}
		out, _, err := query("event", s.taskID(task))
		must(t, err)
		wantTable := "TASK_ID    EVENT_NAME  STATUS  DURATION  RETRIES  ERROR\n" +
			fmt.Sprintf("%s  %-10s  failed  %-8s  %d        boom\n", s.taskID(task), s.eventName(task), s.duration(task), s.retries(task))
		if out != wantTable {
			t.Errorf("query event:\n%s\nwant\n%s", out, wantTable)
		}

		out, _, err = query("operation", s.taskID(6), "--op-id", "q1")
		must(t, err)
		wantTable = "TASK_ID    OP_ID  HOST         PORT  OPERATION  STATUS     LATENCY  BYTES_SENT  BYTES_RECEIVED  ERROR\n" +
			"clu-00006  q1     db.internal  5432  db_query   completed  1.5s     6           12              -\n"
		if out != wantTable {
			t.Errorf("query operation:\n%s\nwant\n%s", out, wantTable)
		}

		out, hint, err := query("events", "--status", "failed", "--limit", "7")
		must(t, err)
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if got := strings.Fields(lines[0]); !slices.Equal(got, []string{"TASK_ID", "EVENT_NAME", "STATUS", "DURATION", "RETRIES", "ERROR"}) || len(lines) != 8 {
			t.Errorf("query events --limit 7: header %q and %d rows:\n%s", got, len(lines)-1, out)
		}
		if !strings.HasPrefix(hint, "more results: add --all, or --cursor c.") {
			t.Errorf("query events --limit 7: hint %q", hint)
		}

		out, hint, err = query("events", "--status", "failed", "--limit", "37", "--all")
		must(t, err)
		rows := strings.Split(strings.TrimSuffix(out, "\n"), "\n")[1:]
		seen := map[string]bool{}
		for _, r := range rows {
			f := strings.Fields(r)
			if len(f) != 6 || f[2] != "failed" || f[5] != "boom" || seen[f[0]] {
				t.Errorf("query events --all: row %q", r)
			}
			seen[f[0]] = true
		}
		if len(rows) != want.failed || hint != "" {
			t.Errorf("query events --status failed --all: %d rows, want %d; hint %q", len(rows), want.failed, hint)
		}

		out, _, err = query("network", "--status", "failed", "--all", "--json")
		must(t, err)
		var page schemas.Page[schemas.NetworkMetric]
		must(t, json.Unmarshal([]byte(out), &page))
		if len(page.Items) != want.opsFailed || page.Next != "" {
			t.Errorf("query --json network --all: %d items, next %q; want %d", len(page.Items), page.Next, want.opsFailed)
		}

		out, _, err = query("--json", "retries")
		must(t, err)
		if out != string(wantRetries)+"\n" {
			t.Errorf("query --json retries: %s, want %s", out, wantRetries)
		}
		out, _, err = query("retries")
		must(t, err)
		wantTable = "TOTAL_RETRIES  EVENTS_WITH_RETRIES  MAX_RETRIES\n" +
			fmt.Sprintf("%-13d  %-19d  %d\n\n", want.retries, want.withRetries, want.maxRetries) +
			"RETRY_COUNT  EVENTS\n"
		for r := range 4 {
			wantTable += fmt.Sprintf("%-11d  %d\n", r, want.byRetryCount[fmt.Sprint(r)])
		}
		if out != wantTable {
			t.Errorf("query retries:\n%s\nwant\n%s", out, wantTable)
		}

		// The API's error message, as an error (pipetel exits 1).
		failed(`no event with task_id "no-such-task" (HTTP 404)`, "event", "no-such-task")
		failed(`invalid parameter "status": got "bogus", expected one of pending, completed, failed, timed_out, orphan (HTTP 400)`, "events", "--status", "bogus")
	})
}
