package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
)

const (
	testEvents  = schemas.DefaultEventsTopic
	testNetwork = schemas.DefaultNetworkTopic
)

// groupMember is a DescribeGroups member advertising addr and assigned
// parts of both input topics.
func groupMember(id, addr string, parts ...int) kafka.DescribeGroupsResponseMember {
	return kafka.DescribeGroupsResponseMember{
		MemberID:       id,
		MemberMetadata: kafka.DescribeGroupsResponseMemberMetadata{Topics: []string{testEvents, testNetwork}, UserData: []byte(addr)},
		MemberAssignments: kafka.DescribeGroupsResponseAssignments{Topics: []kafka.GroupMemberTopic{
			{Topic: testEvents, Partitions: parts}, {Topic: testNetwork, Partitions: parts},
		}},
	}
}

func TestNewRouting(t *testing.T) {
	type want struct {
		members []string // addr=events partitions, "*" marks self
		owners  map[int]string
		missing []int // uncovered events partitions out of 4
		err     string
	}
	describe := func(rt *routing) want {
		var w want
		w.owners = map[int]string{}
		for _, m := range rt.members {
			s := fmt.Sprintf("%s=%v", m.addr, m.parts[testEvents])
			if m.self {
				s += "*"
			}
			w.members = append(w.members, s)
		}
		for p := range 4 {
			if m, ok := rt.ownerOf(testEvents, p); ok {
				w.owners[p] = m.addr
			}
		}
		w.missing = rt.uncovered(testEvents, 4)
		return w
	}
	tests := []struct {
		name  string
		group kafka.DescribeGroupsResponseGroup
		want  want
	}{
		{"two members, sorted by address", kafka.DescribeGroupsResponseGroup{GroupID: "g", GroupState: "Stable", Members: []kafka.DescribeGroupsResponseMember{
			groupMember("m2", "127.0.0.1:9002", 2, 3), groupMember("m1", "127.0.0.1:9001", 1, 0),
		}}, want{
			members: []string{"127.0.0.1:9001=[0 1]*", "127.0.0.1:9002=[2 3]"},
			owners:  map[int]string{0: "127.0.0.1:9001", 1: "127.0.0.1:9001", 2: "127.0.0.1:9002", 3: "127.0.0.1:9002"},
		}},
		{"a member without an address serves nothing", kafka.DescribeGroupsResponseGroup{GroupID: "g", GroupState: "Stable", Members: []kafka.DescribeGroupsResponseMember{
			groupMember("m1", "127.0.0.1:9001", 0, 1), groupMember("m2", "", 2), groupMember("m3", "not-an-address", 3),
		}}, want{
			members: []string{"127.0.0.1:9001=[0 1]*"},
			owners:  map[int]string{0: "127.0.0.1:9001", 1: "127.0.0.1:9001"},
			missing: []int{2, 3},
		}},
		{"two members with one address are one instance", kafka.DescribeGroupsResponseGroup{GroupID: "g", GroupState: "Stable", Members: []kafka.DescribeGroupsResponseMember{
			groupMember("old", "127.0.0.1:9002", 3, 2), groupMember("new", "127.0.0.1:9002", 2), groupMember("m1", "127.0.0.1:9001", 0, 1),
		}}, want{
			members: []string{"127.0.0.1:9001=[0 1]*", "127.0.0.1:9002=[2 3]"},
			owners:  map[int]string{0: "127.0.0.1:9001", 1: "127.0.0.1:9001", 2: "127.0.0.1:9002", 3: "127.0.0.1:9002"},
		}},
		// While rebalancing, the coordinator sends members without
		// metadata or assignments.
		{"rebalancing", kafka.DescribeGroupsResponseGroup{GroupID: "g", GroupState: "PreparingRebalance", Members: []kafka.DescribeGroupsResponseMember{
			{MemberID: "m1"}, {MemberID: "m2"},
		}}, want{owners: map[int]string{}, missing: []int{0, 1, 2, 3}}},
		{"empty group", kafka.DescribeGroupsResponseGroup{GroupID: "g", GroupState: "Empty"},
			want{owners: map[int]string{}, missing: []int{0, 1, 2, 3}}},
		{"error", kafka.DescribeGroupsResponseGroup{GroupID: "g", Error: kafka.GroupIdNotFound},
			want{err: `cannot describe consumer group "g": ` + kafka.GroupIdNotFound.Error()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt, err := newRouting(tt.group, "127.0.0.1:9001")
			if tt.want.err != "" {
				if err == nil || err.Error() != tt.want.err {
					t.Fatalf("error %v, want %s", err, tt.want.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := describe(rt); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("routing %+v\nwant    %+v", got, tt.want)
			}
		})
	}
}

// fakeMembers are members holding items "<addr>-<i>" for i < count, paged
// by a local cursor that is the next index.
type fakeMembers map[string]int

func (f fakeMembers) fetch(calls *[]string) fetchFunc {
	return func(m member, limit int, cursor string) (rawPage, error) {
		*calls = append(*calls, fmt.Sprintf("%s:%d:%s", m.addr, limit, cursor))
		from := 0
		if cursor != "" {
			from, _ = strconv.Atoi(cursor)
		}
		page := rawPage{Items: []json.RawMessage{}}
		for i := from; i < f[m.addr] && len(page.Items) < limit; i++ {
			page.Items = append(page.Items, json.RawMessage(fmt.Sprintf("%q", fmt.Sprintf("%s-%d", m.addr, i))))
		}
		if next := from + len(page.Items); next < f[m.addr] && len(page.Items) == limit {
			page.Next = strconv.Itoa(next)
		}
		return page, nil
	}
}

func TestMergePages(t *testing.T) {
	members := []member{{addr: "a"}, {addr: "b"}, {addr: "c"}}
	tests := []struct {
		counts fakeMembers
		limit  int
		pages  []int // page sizes
		calls  int   // member requests over all pages
	}{
		{fakeMembers{"a": 5, "b": 5, "c": 5}, 5, []int{5, 5, 5}, 3},
		{fakeMembers{"a": 5, "b": 5, "c": 5}, 4, []int{4, 4, 4, 3}, 6},
		{fakeMembers{"a": 5, "b": 5, "c": 5}, 100, []int{15}, 3},
		{fakeMembers{"a": 5, "b": 5, "c": 5}, 15, []int{15}, 3},
		{fakeMembers{"a": 0, "b": 7, "c": 0}, 3, []int{3, 3, 1}, 5},
		{fakeMembers{"a": 0, "b": 0, "c": 0}, 3, []int{0}, 3},
		// A page that fills up exactly at a member's end continues with
		// the next member; when that one is empty the last page is empty.
		{fakeMembers{"a": 3, "b": 0, "c": 0}, 3, []int{3, 0}, 3},
		{fakeMembers{"a": 1, "b": 1, "c": 1}, 1, []int{1, 1, 1}, 3},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v/limit=%d", tt.counts, tt.limit), func(t *testing.T) {
			var calls []string
			var got []string
			var sizes []int
			cursor := ""
			for range 100 {
				page, err := mergePages(members, "fp", cursor, tt.limit, tt.counts.fetch(&calls))
				if err != nil {
					t.Fatal(err)
				}
				sizes = append(sizes, len(page.Items))
				for _, it := range page.Items {
					var s string
					json.Unmarshal(it, &s)
					got = append(got, s)
				}
				if page.Next == "" {
					break
				}
				cursor = page.Next
			}
			var want []string
			for _, m := range members {
				for i := range tt.counts[m.addr] {
					want = append(want, fmt.Sprintf("%s-%d", m.addr, i))
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("items %q, want %q", got, want)
			}
			if !slices.Equal(sizes, tt.pages) || len(calls) != tt.calls {
				t.Errorf("page sizes %v and %d member calls %q, want %v and %d", sizes, len(calls), calls, tt.pages, tt.calls)
			}
		})
	}

	t.Run("errors", func(t *testing.T) {
		var calls []string
		fetch := fakeMembers{"a": 5, "b": 5, "c": 5}.fetch(&calls)
		page, err := mergePages(members, "fp", "", 4, fetch)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := mergePages(members, "other", page.Next, 4, fetch); !errors.Is(err, ErrAssignmentChanged) {
			t.Errorf("cursor of another assignment: %v, want ErrAssignmentChanged", err)
		}
		if _, err := mergePages(members[:1], "fp", clusterCursor{Assignment: "fp", Member: 1}.encode(), 4, fetch); !errors.Is(err, state.ErrBadCursor) {
			t.Errorf("cursor past the members: %v, want ErrBadCursor", err)
		}
		for _, bad := range []string{"!!!", "AAAAAAAA", "c.!!!", "c." + "e30", "c.bnVsbA"} {
			if _, err := mergePages(members, "fp", bad, 4, fetch); !errors.Is(err, state.ErrBadCursor) || err.Error() != fmt.Sprintf("cannot continue from cursor %q: invalid cursor", bad) {
				t.Errorf("cursor %q: %v, want ErrBadCursor", bad, err)
			}
		}
		boom := errors.New("boom")
		_, err = mergePages(members, "fp", "", 4, func(member, int, string) (rawPage, error) { return rawPage{}, boom })
		if !errors.Is(err, boom) {
			t.Errorf("member failure: %v, want boom", err)
		}
	})
}

func TestClusterCursorRoundTrip(t *testing.T) {
	for _, cc := range []clusterCursor{
		{Assignment: "abc", Member: 0},
		{Assignment: "3kz0", Member: 2, Local: "cGUAAAAAdGFzay0x"},
		{Assignment: "x", Member: 17, Local: "c.nested"},
	} {
		s := cc.encode()
		if !isClusterCursor(s) || strings.ContainsAny(s, "+/=&?% ") {
			t.Errorf("%+v encodes to %q, not a URL-safe cluster cursor", cc, s)
		}
		got, err := decodeClusterCursor(s)
		if err != nil || got != cc {
			t.Errorf("round trip of %+v: %+v, %v", cc, got, err)
		}
	}
}

func FuzzDecodeClusterCursor(f *testing.F) {
	f.Add(clusterCursor{Assignment: "abc", Member: 1, Local: "cGUAAAAA"}.encode())
	f.Add("c.")
	f.Add("cGUAAAAAdGFzay0x")
	f.Fuzz(func(t *testing.T, s string) {
		cc, err := decodeClusterCursor(s)
		if err != nil {
			if !errors.Is(err, state.ErrBadCursor) {
				t.Fatalf("%q: %v is not ErrBadCursor", s, err)
			}
			return
		}
		if again, err := decodeClusterCursor(cc.encode()); err != nil || again != cc {
			t.Fatalf("%q: %+v does not round trip: %+v, %v", s, cc, again, err)
		}
	})
}

func TestMergeRetries(t *testing.T) {
	sum := func(total, with, maxR int64, by map[string]int64) schemas.RetrySummary {
		return schemas.RetrySummary{TotalRetries: total, EventsWithRetries: with, MaxRetries: maxR, EventsByRetryCount: by}
	}
	tests := []struct {
		name  string
		parts []schemas.RetrySummary
		want  string
	}{
		{"none", nil, `{"total_retries":0,"events_with_retries":0,"max_retries":0,"events_by_retry_count":{}}`},
		{"one", []schemas.RetrySummary{sum(3, 2, 2, map[string]int64{"0": 2, "1": 1, "2": 1})},
			`{"total_retries":3,"events_with_retries":2,"max_retries":2,"events_by_retry_count":{"0":2,"1":1,"2":1}}`},
		{"two", []schemas.RetrySummary{
			sum(3, 2, 2, map[string]int64{"0": 2, "1": 1, "2": 1}),
			sum(7, 3, 3, map[string]int64{"0": 5, "1": 1, "3": 2}),
		}, `{"total_retries":10,"events_with_retries":5,"max_retries":3,"events_by_retry_count":{"0":7,"1":2,"2":1,"3":2}}`},
		{"an empty member", []schemas.RetrySummary{
			sum(0, 0, 0, map[string]int64{}),
			sum(4, 1, 4, map[string]int64{"4": 1}),
		}, `{"total_retries":4,"events_with_retries":1,"max_retries":4,"events_by_retry_count":{"4":1}}`},
	}
	for _, tt := range tests {
		b, _ := json.Marshal(mergeRetries(tt.parts...))
		if string(b) != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, b, tt.want)
		}
	}
}

// fakeGroup answers DescribeGroups and Metadata like a coordinator whose
// group has the given members.
type fakeGroup struct {
	mu         sync.Mutex
	members    []kafka.DescribeGroupsResponseMember
	state      string
	partitions int
}

func (f *fakeGroup) set(state string, members ...kafka.DescribeGroupsResponseMember) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state, f.members = state, members
}

func (f *fakeGroup) DescribeGroups(_ context.Context, req *kafka.DescribeGroupsRequest) (*kafka.DescribeGroupsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &kafka.DescribeGroupsResponse{Groups: []kafka.DescribeGroupsResponseGroup{
		{GroupID: req.GroupIDs[0], GroupState: f.state, Members: slices.Clone(f.members)},
	}}, nil
}

func (f *fakeGroup) Metadata(_ context.Context, req *kafka.MetadataRequest) (*kafka.MetadataResponse, error) {
	resp := &kafka.MetadataResponse{}
	for _, name := range req.Topics {
		tp := kafka.Topic{Name: name}
		for p := range f.partitions {
			tp.Partitions = append(tp.Partitions, kafka.Partition{Topic: name, ID: p})
		}
		resp.Topics = append(resp.Topics, tp)
	}
	return resp, nil
}

// testInstance is one instance of a fake group: a store owning some
// partitions and its API on a test server.
type testInstance struct {
	srv       *httptest.Server
	store     *state.Store
	parts     []int
	cluster   *Cluster
	forwarded atomic.Int64 // requests other instances sent it
}

func (in *testInstance) addr() string { return in.srv.Listener.Addr().String() }

// newTestGroup starts one instance per element of owned, each owning those
// partitions (of 4) of both topics, all in one fake group.
func newTestGroup(t *testing.T, owned ...[]int) ([]*testInstance, *fakeGroup) {
	t.Helper()
	return newTestGroupWith(t, nil, owned...)
}

// newTestGroupWith is newTestGroup with opts(i) the API options of
// instance i.
func newTestGroupWith(t *testing.T, opts func(i int) []APIOption, owned ...[]int) ([]*testInstance, *fakeGroup) {
	t.Helper()
	fg := &fakeGroup{partitions: 4}
	var insts []*testInstance
	var members []kafka.DescribeGroupsResponseMember
	for i, parts := range owned {
		in := &testInstance{parts: parts}
		mux := http.NewServeMux()
		in.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get(ForwardedHeader) != "" {
				in.forwarded.Add(1)
			}
			mux.ServeHTTP(w, r)
		}))
		t.Cleanup(in.srv.Close)
		var units []state.Unit
		for _, p := range parts {
			units = append(units, state.Unit{Stream: state.Events, Partition: int32(p)}, state.Unit{Stream: state.Network, Partition: int32(p)})
		}
		in.store = newStore(t, units...)
		c, err := NewCluster(ClusterConfig{Brokers: []string{"127.0.0.1:1"}, GroupID: "g", AdvertiseHTTP: in.addr()}, withGroupClient(fg))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		in.cluster = c
		apiOpts := []APIOption{WithCluster(c)}
		if opts != nil {
			apiOpts = append(apiOpts, opts(i)...)
		}
		NewAPI(in.store, apiOpts...).Register(mux)
		insts = append(insts, in)
		members = append(members, groupMember(fmt.Sprintf("m%d", i), in.addr(), parts...))
	}
	fg.set("Stable", members...)
	return insts, fg
}

// groupTask is task i of the fake group's data: retries i%3, failed when
// i%5 == 1, a network operation "q" when i is even.
func groupTask(i int) string { return fmt.Sprintf("task-%03d", i) }

// fillGroup applies n tasks, each to the instance owning its Murmur2
// partition, and returns the retry statistics they must give.
func fillGroup(t *testing.T, insts []*testInstance, n int) string {
	t.Helper()
	byCount := map[string]int64{}
	var total, with, maxR int64
	for i := range n {
		id := groupTask(i)
		p := partOf(id)
		var owner *testInstance
		for _, in := range insts {
			if slices.Contains(in.parts, p) {
				owner = in
			}
		}
		recs := []schemas.Record{evStart(id, 0)}
		for r := range i % 3 {
			recs = append(recs, evRetry(id, float64(r+1)/10))
		}
		errText := ""
		if i%5 == 1 {
			errText = "boom"
		}
		recs = append(recs, evEnd(id, float64(i%7)/2, errText))
		apply(t, owner.store, state.Unit{Stream: state.Events, Partition: int32(p)}, recs...)
		if i%2 == 0 {
			apply(t, owner.store, state.Unit{Stream: state.Network, Partition: int32(p)}, netStart(id, "q", 0), netEnd(id, "q", 1, ""))
		}
		byCount[strconv.Itoa(i%3)]++
		total += int64(i % 3)
		if i%3 > 0 {
			with++
		}
		maxR = max(maxR, int64(i%3))
	}
	b, _ := json.Marshal(schemas.RetrySummary{TotalRetries: total, EventsWithRetries: with, MaxRetries: maxR, EventsByRetryCount: byCount})
	return string(b) + "\n"
}

func getFrom(t *testing.T, addr, path string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// listFrom pages through a list on one instance and returns the item ids
// and the cursors it was given.
func listFrom(t *testing.T, addr, path string, limit int) (ids, cursors []string) {
	t.Helper()
	cursor := ""
	for range 1000 {
		p := fmt.Sprintf("%s%slimit=%d", path, map[bool]string{true: "&", false: "?"}[strings.Contains(path, "?")], limit)
		if cursor != "" {
			p += "&cursor=" + url.QueryEscape(cursor)
		}
		code, body := getFrom(t, addr, p)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", p, code, body)
		}
		var page struct {
			Items []struct {
				TaskID string `json:"task_id"`
			} `json:"items"`
			Next string `json:"next_cursor"`
		}
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Items) > limit {
			t.Fatalf("GET %s: %d items, limit %d", p, len(page.Items), limit)
		}
		for _, it := range page.Items {
			ids = append(ids, it.TaskID)
		}
		if page.Next == "" {
			return ids, cursors
		}
		cursors = append(cursors, page.Next)
		cursor = page.Next
	}
	t.Fatalf("GET %s: paging does not end", path)
	return nil, nil
}

func TestClusterAPI(t *testing.T) {
	const n = 60
	insts, fg := newTestGroup(t, []int{0, 3}, []int{1}, []int{2})
	wantRetries := fillGroup(t, insts, n)

	t.Run("one task, asked of any instance", func(t *testing.T) {
		for i := range n {
			id := groupTask(i)
			paths := []string{"/api/v1/events/" + id}
			if i%2 == 0 {
				paths = append(paths, "/api/v1/network/"+id+"?op_id=q")
			}
			for _, path := range paths {
				var first string
				for _, in := range insts {
					before := make([]int64, len(insts))
					for j, x := range insts {
						before[j] = x.forwarded.Load()
					}
					code, body := getFrom(t, in.addr(), path)
					if code != http.StatusOK || !strings.Contains(body, `"task_id":"`+id+`"`) {
						t.Fatalf("GET %s from %s: %d %s", path, in.addr(), code, body)
					}
					if first == "" {
						first = body
					} else if body != first {
						t.Fatalf("GET %s: instances answer %s and %s", path, first, body)
					}
					// At most one hop, to the owner, and only when the
					// asked instance is not the owner.
					hops := 0
					for j, x := range insts {
						hops += int(x.forwarded.Load() - before[j])
					}
					owns := false
					for _, p := range in.parts {
						owns = owns || p == partOf(id)
					}
					if wantHops := map[bool]int{true: 0, false: 1}[owns]; hops != wantHops {
						t.Fatalf("GET %s from %s (owner: %v): %d hops, want %d", path, in.addr(), owns, hops, wantHops)
					}
				}
			}
		}
	})

	t.Run("not found is the owner's answer", func(t *testing.T) {
		for _, in := range insts {
			code, body := getFrom(t, in.addr(), "/api/v1/events/no-such-task")
			if code != http.StatusNotFound || body != `{"error":"no event with task_id \"no-such-task\""}`+"\n" {
				t.Errorf("from %s: %d %s", in.addr(), code, body)
			}
			code, body = getFrom(t, in.addr(), "/api/v1/network/task-000?op_id=zz")
			if code != http.StatusNotFound || body != `{"error":"no network operation with task_id \"task-000\" and op_id \"zz\""}`+"\n" {
				t.Errorf("from %s: %d %s", in.addr(), code, body)
			}
		}
	})

	t.Run("a forwarded request is never forwarded again", func(t *testing.T) {
		// Instance 1 is asked, on behalf of another instance, for a task
		// of partition 2 (instance 2).
		before := insts[2].forwarded.Load()
		code, body := getFrom(t, insts[1].addr(), "/api/v1/events/"+taskIn(2, n), ForwardedHeader, "1")
		want := fmt.Sprintf(`{"error":"cannot route partition 2 of topic \"pipetel.events\": no instance of the consumer group serves it: the instance at %s was asked for it but does not serve it (the group is rebalancing)"}`+"\n", insts[1].addr())
		if code != http.StatusServiceUnavailable || body != want {
			t.Errorf("got %d %s\nwant 503 %s", code, body, want)
		}
		if insts[2].forwarded.Load() != before {
			t.Errorf("the forwarded request went on to the owner")
		}
	})

	t.Run("lists", func(t *testing.T) {
		var all []string
		for i := range n {
			all = append(all, groupTask(i))
		}
		var failed []string
		for i := 1; i < n; i += 5 {
			failed = append(failed, groupTask(i))
		}
		tests := []struct {
			path string
			want []string
		}{
			{"/api/v1/events", all},
			{"/api/v1/events?status=failed", failed},
			{"/api/v1/events?status=pending", nil},
			{"/api/v1/network", evenTasks(n)},
			{"/api/v1/events?slower_than=2.5s", slowTasks(n)},
		}
		for _, tt := range tests {
			for _, limit := range []int{1, 7, 37, 1000} {
				var order []string
				for k, in := range insts {
					ids, cursors := listFrom(t, in.addr(), tt.path, limit)
					if k == 0 {
						order = ids
					} else if !slices.Equal(ids, order) {
						t.Errorf("GET %s limit %d: instance %d lists %q, instance 0 %q", tt.path, limit, k, ids, order)
					}
					for _, c := range cursors {
						if !isClusterCursor(c) {
							t.Errorf("GET %s: cursor %q is not a cluster cursor", tt.path, c)
						}
					}
					sorted := slices.Sorted(slices.Values(ids))
					if !slices.Equal(sorted, tt.want) {
						t.Errorf("GET %s limit %d from instance %d: %d items %q, want %d", tt.path, limit, k, len(ids), ids, len(tt.want))
					}
				}
			}
		}
	})

	t.Run("scope=local", func(t *testing.T) {
		for _, in := range insts {
			ids, _ := listFrom(t, in.addr(), "/api/v1/events?scope=local", 1000)
			for _, id := range ids {
				p := partOf(id)
				if !slices.Contains(in.parts, p) {
					t.Errorf("%s lists %s of partition %d with scope=local", in.addr(), id, p)
				}
			}
		}
		code, body := getFrom(t, insts[0].addr(), "/api/v1/events?scope=all")
		if want := `{"error":"invalid parameter \"scope\": got \"all\", expected one of cluster, local","parameter":"scope"}` + "\n"; code != http.StatusBadRequest || body != want {
			t.Errorf("scope=all: %d %s", code, body)
		}
	})

	t.Run("retries", func(t *testing.T) {
		for _, in := range insts {
			code, body := getFrom(t, in.addr(), "/api/v1/retries")
			if code != http.StatusOK || body != wantRetries {
				t.Errorf("from %s: %d %s, want %s", in.addr(), code, body, wantRetries)
			}
		}
	})

	t.Run("a cursor of another assignment", func(t *testing.T) {
		_, cursors := listFrom(t, insts[0].addr(), "/api/v1/events", 37)
		members := fg.members
		defer regroup(fg, insts, "Stable", members...)
		// Instance 1 takes partition 3 from instance 0.
		regroup(fg, insts, "Stable", groupMember("m0", insts[0].addr(), 0), groupMember("m1", insts[1].addr(), 1, 3), groupMember("m2", insts[2].addr(), 2))
		code, body := getFrom(t, insts[2].addr(), "/api/v1/events?limit=37&cursor="+cursors[0])
		msg, _ := json.Marshal(fmt.Sprintf("cannot continue from cursor %q: %s", cursors[0], ErrAssignmentChanged))
		want := `{"error":` + string(msg) + `,"parameter":"cursor"}` + "\n"
		if code != http.StatusConflict || body != want {
			t.Errorf("got %d %s\nwant 409 %s", code, body, want)
		}
	})

	t.Run("unreachable or unknown owner", func(t *testing.T) {
		members := fg.members
		defer regroup(fg, insts, "Stable", members...)
		// Partition 2's owner advertises an address nothing listens on.
		dead := httptest.NewServer(http.NotFoundHandler())
		deadAddr := dead.Listener.Addr().String()
		dead.Close()
		regroup(fg, insts, "Stable", groupMember("m0", insts[0].addr(), 0, 3), groupMember("m1", insts[1].addr(), 1), groupMember("m2", deadAddr, 2))
		code, body := getFrom(t, insts[0].addr(), "/api/v1/events/"+taskIn(2, n))
		prefix := fmt.Sprintf(`{"error":"cannot reach the instance at %s that serves partition 2 of topic \"pipetel.events\": `, deadAddr)
		if code != http.StatusServiceUnavailable || !strings.HasPrefix(body, prefix) || !strings.Contains(body, "connection refused") {
			t.Errorf("got %d %s\nwant 503 %s…connection refused…", code, body, prefix)
		}
		code, body = getFrom(t, insts[0].addr(), "/api/v1/events?limit=1000")
		if prefix := fmt.Sprintf(`{"error":"cannot query the instance at %s: `, deadAddr); code != http.StatusServiceUnavailable || !strings.HasPrefix(body, prefix) {
			t.Errorf("list: got %d %s\nwant 503 %s…", code, body, prefix)
		}

		// The group rebalances: no member has an assignment.
		regroup(fg, insts, "PreparingRebalance", kafka.DescribeGroupsResponseMember{MemberID: "m0"}, kafka.DescribeGroupsResponseMember{MemberID: "m1"})
		code, body = getFrom(t, insts[0].addr(), "/api/v1/events/"+taskIn(2, n))
		want := `{"error":"cannot route partition 2 of topic \"pipetel.events\": no instance of the consumer group serves it (consumer group \"g\" is PreparingRebalance with 0 reachable members)"}` + "\n"
		if code != http.StatusServiceUnavailable || body != want {
			t.Errorf("got %d %s\nwant 503 %s", code, body, want)
		}
		// A task of an owned partition is still answered.
		if code, body := getFrom(t, insts[0].addr(), "/api/v1/events/"+taskIn(3, n)); code != http.StatusOK {
			t.Errorf("task of an owned partition: %d %s", code, body)
		}
		for _, path := range []string{"/api/v1/events", "/api/v1/retries"} {
			code, body = getFrom(t, insts[0].addr(), path)
			want = `{"error":"cannot answer for topic \"pipetel.events\" across the group: partitions [0 1 2 3]: no instance of the consumer group serves it (consumer group \"g\" is PreparingRebalance with 0 reachable members)"}` + "\n"
			if code != http.StatusServiceUnavailable || body != want {
				t.Errorf("GET %s: got %d %s\nwant 503 %s", path, code, body, want)
			}
		}
	})
}

// TestClusterAPISingleInstance checks that an instance that is the whole
// group answers as an API without a cluster does: local cursors, no hop.
func TestClusterAPISingleInstance(t *testing.T) {
	const n = 60
	insts, _ := newTestGroup(t, []int{0, 1, 2, 3})
	in := insts[0]
	wantRetries := fillGroup(t, insts, n)
	alone := serve(t, in.store) // the same store without a cluster
	for _, path := range []string{"/api/v1/events", "/api/v1/events?status=failed", "/api/v1/network", "/api/v1/events?slower_than=1s"} {
		ids, cursors := listFrom(t, in.addr(), path, 7)
		aloneIDs, aloneCursors := listFrom(t, alone.Listener.Addr().String(), path, 7)
		if !slices.Equal(ids, aloneIDs) || !slices.Equal(cursors, aloneCursors) {
			t.Errorf("GET %s: %q %q, without a cluster %q %q", path, ids, cursors, aloneIDs, aloneCursors)
		}
	}
	for _, path := range []string{"/api/v1/retries", "/api/v1/events/" + groupTask(5), "/api/v1/events/nope", "/api/v1/network/" + groupTask(4) + "?op_id=q"} {
		code, body := getFrom(t, in.addr(), path)
		aloneCode, aloneBody := getFrom(t, alone.Listener.Addr().String(), path)
		if code != aloneCode || body != aloneBody {
			t.Errorf("GET %s: %d %s, without a cluster %d %s", path, code, body, aloneCode, aloneBody)
		}
	}
	if _, body := getFrom(t, in.addr(), "/api/v1/retries"); body != wantRetries {
		t.Errorf("retries %s, want %s", body, wantRetries)
	}
	if hops := in.forwarded.Load(); hops != 0 {
		t.Errorf("%d requests went over HTTP to the instance itself", hops)
	}
}

// regroup sets the fake group's members and makes the instances read
// their routing tables again.
func regroup(fg *fakeGroup, insts []*testInstance, state string, members ...kafka.DescribeGroupsResponseMember) {
	fg.set(state, members...)
	for _, in := range insts {
		in.cluster.invalidate()
	}
}

// partOf is the partition, of 4, of a task: the producers' Murmur2.
func partOf(id string) int {
	return kafka.Murmur2Balancer{}.Balance(kafka.Message{Key: []byte(id)}, 0, 1, 2, 3)
}

// taskIn returns the first of n tasks in partition p.
func taskIn(p, n int) string {
	for i := range n {
		if partOf(groupTask(i)) == p {
			return groupTask(i)
		}
	}
	panic(fmt.Sprintf("no task in partition %d", p))
}

func evenTasks(n int) []string {
	var ids []string
	for i := 0; i < n; i += 2 {
		ids = append(ids, groupTask(i))
	}
	return ids
}

func slowTasks(n int) []string {
	var ids []string
	for i := range n {
		if float64(i%7)/2 > 2.5 {
			ids = append(ids, groupTask(i))
		}
	}
	return ids
}

// TestClusterAPIFiltersTopAndRunning: the new list parameters give the same
// answer from every instance of a group, top merges the instances' own
// slowest, and running_longer_than is measured by the asked instance's
// clock for every instance's partitions.
func TestClusterAPIFiltersTopAndRunning(t *testing.T) {
	const n = 60
	// Instance i's clock reads at(3600*(i+1)).
	clock := func(i int) []APIOption {
		return []APIOption{WithClock(func() time.Time { return at(float64(3600 * (i + 1))) })}
	}
	insts, _ := newTestGroupWith(t, clock, []int{0, 3}, []int{1}, []int{2})
	fillGroup(t, insts, n)
	// Twelve running tasks, started 0, 300, …, 3300 s after t0.
	var running []string
	for k := range 12 {
		id := fmt.Sprintf("run-%02d", k)
		running = append(running, id)
		p := partOf(id)
		for _, in := range insts {
			if slices.Contains(in.parts, p) {
				apply(t, in.store, state.Unit{Stream: state.Events, Partition: int32(p)}, named(id, "load", "p1", float64(300*k)))
			}
		}
	}
	// The reference order of a top answer: duration i%7/2 descending,
	// then task id.
	top := func(k int, keep func(i int) bool) []string {
		var is []int
		for i := range n {
			if keep(i) {
				is = append(is, i)
			}
		}
		slices.SortStableFunc(is, func(a, b int) int { return (b % 7) - (a % 7) })
		var ids []string
		for _, i := range is[:min(k, len(is))] {
			ids = append(ids, groupTask(i))
		}
		return ids
	}
	all := func(int) bool { return true }
	sorted := func(ids []string) []string { return slices.Sorted(slices.Values(ids)) }

	for k, in := range insts {
		for _, tt := range []struct {
			path   string
			want   []string
			sorted bool // compare as sets: lists order by instance
		}{
			{"/api/v1/events?top=10", top(10, all), false},
			{"/api/v1/events?top=1000", top(1000, all), false},
			{"/api/v1/events?top=3&status=failed", top(3, func(i int) bool { return i%5 == 1 }), false},
			{"/api/v1/network?top=3", []string{groupTask(0), groupTask(2), groupTask(4)}, false}, // all 1 s: by task id
			{"/api/v1/events?event_name=load", running, true},
			// The asked instance's clock, for the partitions of all three.
			{"/api/v1/events?running_longer_than=10m", running[:max(0, min(12, (3600*(k+1)-600+299)/300))], true},
		} {
			if tt.sorted {
				for _, limit := range []int{1, 5, 1000} {
					ids, _ := listFrom(t, in.addr(), tt.path, limit)
					if got := sorted(ids); !slices.Equal(got, tt.want) {
						t.Errorf("GET %s limit %d from instance %d: %q, want %q", tt.path, limit, k, got, tt.want)
					}
				}
				continue
			}
			code, body := getFrom(t, in.addr(), tt.path)
			var page struct {
				Items []struct {
					TaskID string `json:"task_id"`
				} `json:"items"`
				Next *string `json:"next_cursor"`
			}
			if err := json.Unmarshal([]byte(body), &page); code != http.StatusOK || err != nil {
				t.Fatalf("GET %s from instance %d: %d %s", tt.path, k, code, body)
			}
			var ids []string
			for _, it := range page.Items {
				ids = append(ids, it.TaskID)
			}
			if !slices.Equal(ids, tt.want) || page.Next != nil {
				t.Errorf("GET %s from instance %d: %q (next %v), want %q", tt.path, k, ids, page.Next, tt.want)
			}
		}
	}

	t.Run("a task's operations, asked of any instance", func(t *testing.T) {
		for _, tc := range []struct {
			task string
			want string
		}{{groupTask(0), `"task_id":"` + groupTask(0) + `","op_id":"q"`}, {groupTask(1), ""}} {
			for _, in := range insts {
				before := insts[0].forwarded.Load() + insts[1].forwarded.Load() + insts[2].forwarded.Load()
				code, body := getFrom(t, in.addr(), "/api/v1/network/"+tc.task)
				hops := insts[0].forwarded.Load() + insts[1].forwarded.Load() + insts[2].forwarded.Load() - before
				owns := slices.Contains(in.parts, partOf(tc.task))
				wantHops := map[bool]int64{true: 0, false: 1}[owns]
				if code != http.StatusOK || strings.Count(body, `"task_id"`) != map[bool]int{true: 1, false: 0}[tc.want != ""] ||
					!strings.Contains(body, tc.want) || hops != wantHops {
					t.Errorf("operations of %s from %s: %d %s, %d hops; want %s and %d hops", tc.task, in.addr(), code, body, hops, tc.want, wantHops)
				}
			}
		}
	})
}
