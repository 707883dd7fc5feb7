package query

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
)

// API serves the query endpoints. Alone it answers from the partitions its
// store owns; with a Cluster it answers for the whole consumer group: a
// single task is asked of the instance that serves its partition, and lists
// and retry statistics are gathered from every instance.
type API struct {
	store   *state.Store
	cluster *Cluster
	log     *slog.Logger
	now     func() time.Time
}

// APIOption configures NewAPI.
type APIOption func(*API)

// WithCluster makes the API answer for the whole consumer group through c.
// Default: none, the API answers from its store alone.
func WithCluster(c *Cluster) APIOption { return func(a *API) { a.cluster = c } }

// WithAPILogger sets where the API logs the causes of the 500s it answers
// (which name state keys, so they stay out of responses). Default: none.
func WithAPILogger(l *slog.Logger) APIOption { return func(a *API) { a.log = l } }

// WithClock sets the clock running_longer_than is measured against: give it
// the processor's (processor.Config.Now), so that "running for 5 minutes"
// means the same to the API as to the processor's wall clock. Nil or
// default: time.Now.
func WithClock(now func() time.Time) APIOption {
	return func(a *API) {
		if now != nil {
			a.now = now
		}
	}
}

// NewAPI returns the query API over store.
func NewAPI(store *state.Store, opts ...APIOption) *API {
	a := &API{store: store, log: slog.New(slog.DiscardHandler), now: time.Now}
	for _, o := range opts {
		o(a)
	}
	return a
}

// Register adds the API's routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+schemas.PathEvents+"/{task_id...}", a.event)
	mux.HandleFunc("GET "+schemas.PathEvents, list(a, state.Events, a.events, schemas.CompareSlowerEvent))
	mux.HandleFunc("GET "+schemas.PathNetwork+"/{task_id...}", a.networkOp)
	mux.HandleFunc("GET "+schemas.PathNetwork, list(a, state.Network, a.network, schemas.CompareSlowerNetwork))
	mux.HandleFunc("GET "+schemas.PathRetries, a.retries)
}

// apiError is the body of every error response.
type apiError = schemas.ErrorBody

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func badParam(w http.ResponseWriter, name, value, want string) {
	writeJSON(w, http.StatusBadRequest, apiError{
		Error:     fmt.Sprintf("invalid parameter %q: got %q, expected %s", name, value, want),
		Parameter: name,
	})
}

// errInternalAnswer is what a client is told of a failure inside the
// instance; the cause, which can name state keys, goes to the log.
const errInternalAnswer = "internal error: the state store could not answer; the instance's log has the cause"

func (a *API) internalError(w http.ResponseWriter, r *http.Request, err error) {
	a.log.Error("cannot answer a query", "path", r.URL.Path, "err", err)
	writeJSON(w, http.StatusInternalServerError, apiError{Error: errInternalAnswer})
}

func (a *API) event(w http.ResponseWriter, r *http.Request) {
	if !onlyParams(w, r.URL.Query()) {
		return
	}
	id := r.PathValue("task_id")
	m, found, err := a.store.Event(id)
	if err != nil {
		a.internalError(w, r, err)
		return
	}
	if !found {
		if a.routeElsewhere(w, r, state.Events, id) {
			return
		}
		writeJSON(w, http.StatusNotFound, apiError{Error: fmt.Sprintf("no event with task_id %q", id)})
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func (a *API) networkOp(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !q.Has(schemas.ParamOpID) {
		a.networkOpsOf(w, r, q)
		return
	}
	if !onlyParams(w, q, schemas.ParamOpID) {
		return
	}
	id := r.PathValue("task_id")
	m, found, err := a.store.NetworkOp(id, q.Get(schemas.ParamOpID))
	if err != nil {
		a.internalError(w, r, err)
		return
	}
	if !found {
		if a.routeElsewhere(w, r, state.Network, id) {
			return
		}
		writeJSON(w, http.StatusNotFound, apiError{Error: fmt.Sprintf("no network operation with task_id %q and op_id %q", id, q.Get(schemas.ParamOpID))})
		return
	}
	writeJSON(w, http.StatusOK, m)
}

// networkOpsOf lists a task's network operations (no op_id): from this
// instance when it serves the task's partition, else from the owner.
func (a *API) networkOpsOf(w http.ResponseWriter, r *http.Request, q url.Values) {
	if !onlyParams(w, q, schemas.ParamOpID, schemas.ParamLimit, schemas.ParamCursor) {
		return
	}
	limit, ok := parseLimit(w, q)
	if !ok {
		return
	}
	id := r.PathValue("task_id")
	page, err := a.store.NetworkOpsOf(r.Context(), id, limit, q.Get(schemas.ParamCursor))
	// Only the owner of the task's partition holds its operations: none
	// here means ask it (a cursor is the owner's too).
	if err == nil && len(page.Items) == 0 && a.routeElsewhere(w, r, state.Network, id) {
		return
	}
	writePage(a, w, r, page, err)
}

// listParams are the parameters shared by the list endpoints.
type listParams struct {
	status                schemas.Status
	slowerThan            time.Duration
	limit                 int
	cursor                string
	eventName, pipelineID string
	since, until          time.Time
	// running is set by running_longer_than, which until holds by then.
	running bool
	top     int
}

var statuses = []schemas.Status{schemas.StatusPending, schemas.StatusCompleted, schemas.StatusFailed, schemas.StatusTimedOut, schemas.StatusOrphan}

const (
	wantDuration = "a non-negative duration such as 1.5s, 250ms or 2 (seconds)"
	wantTime     = "an RFC 3339 time with Z or an offset, such as 2006-01-02T15:04:05Z"
)

// parseList reads the parameters of a list of stream st. running_longer_than
// becomes status=pending and an until of now less the duration, by the
// API's clock.
func (a *API) parseList(w http.ResponseWriter, q url.Values, st state.Stream) (listParams, bool) {
	var p listParams
	allowed := []string{schemas.ParamStatus, schemas.ParamSlowerThan, schemas.ParamLimit, schemas.ParamCursor}
	if st == state.Events {
		// Network metrics carry neither.
		allowed = append(allowed, schemas.ParamEventName, schemas.ParamPipelineID)
	}
	allowed = append(allowed, schemas.ParamSince, schemas.ParamUntil, schemas.ParamRunningLongerThan, schemas.ParamTop)
	if !onlyParams(w, q, allowed...) {
		return p, false
	}
	if v := q.Get(schemas.ParamStatus); v != "" {
		for _, s := range statuses {
			if string(s) == v {
				p.status = s
			}
		}
		if p.status == "" {
			badParam(w, schemas.ParamStatus, v, "one of pending, completed, failed, timed_out, orphan")
			return p, false
		}
	}
	for _, f := range []struct {
		name string
		to   *string
	}{{schemas.ParamEventName, &p.eventName}, {schemas.ParamPipelineID, &p.pipelineID}} {
		v := q.Get(f.name)
		if len(v) > schemas.MaxIDBytes || !utf8.ValidString(v) {
			badParam(w, f.name, v, fmt.Sprintf("at most %d bytes of UTF-8, as in records", schemas.MaxIDBytes))
			return p, false
		}
		*f.to = v
	}
	for _, f := range []struct {
		name string
		to   *time.Time
	}{{schemas.ParamSince, &p.since}, {schemas.ParamUntil, &p.until}} {
		if v := q.Get(f.name); v != "" {
			t, err := schemas.ParseTime(v)
			if err != nil {
				badParam(w, f.name, v, wantTime)
				return p, false
			}
			*f.to = t
		}
	}
	if !p.since.IsZero() && !p.until.IsZero() && !p.until.After(p.since) {
		badParam(w, schemas.ParamUntil, q.Get(schemas.ParamUntil), fmt.Sprintf("a time after since (%s)", q.Get(schemas.ParamSince)))
		return p, false
	}
	if v := q.Get(schemas.ParamRunningLongerThan); v != "" {
		d, err := schemas.ParseDuration(v)
		if err != nil || d < 0 {
			badParam(w, schemas.ParamRunningLongerThan, v, wantDuration)
			return p, false
		}
		if p.status != "" && p.status != schemas.StatusPending {
			badParam(w, schemas.ParamStatus, string(p.status), "pending or none when running_longer_than is set: only pending metrics are running")
			return p, false
		}
		p.status, p.running = schemas.StatusPending, true
		if cut := a.now().Add(-d).UTC(); p.until.IsZero() || cut.Before(p.until) {
			p.until = cut
		}
	}
	if v := q.Get(schemas.ParamSlowerThan); v != "" {
		d, err := schemas.ParseDuration(v)
		if err != nil || d < 0 {
			badParam(w, schemas.ParamSlowerThan, v, wantDuration)
			return p, false
		}
		p.slowerThan = d
		if p.running {
			badParam(w, schemas.ParamSlowerThan, v, "none with running_longer_than: running metrics have no duration")
			return p, false
		}
		if p.status == schemas.StatusPending {
			badParam(w, schemas.ParamStatus, "pending", "a finished status when slower_than is set: pending metrics have no duration")
			return p, false
		}
	}
	var ok bool
	if p.limit, ok = parseLimit(w, q); !ok {
		return p, false
	}
	p.cursor = q.Get(schemas.ParamCursor)
	if v := q.Get(schemas.ParamTop); v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil || n < 1 || n > schemas.MaxLimit:
			badParam(w, schemas.ParamTop, v, fmt.Sprintf("an integer 1..%d", schemas.MaxLimit))
			return p, false
		case p.running:
			badParam(w, schemas.ParamTop, v, "none with running_longer_than: running metrics have no duration")
			return p, false
		case p.status == schemas.StatusPending:
			badParam(w, schemas.ParamStatus, "pending", "a finished status when top is set: pending metrics have no duration")
			return p, false
		case q.Get(schemas.ParamLimit) != "":
			badParam(w, schemas.ParamLimit, q.Get(schemas.ParamLimit), "none with top: top=N is the size of its one page")
			return p, false
		case p.cursor != "":
			badParam(w, schemas.ParamCursor, p.cursor, "none with top: top answers one page")
			return p, false
		}
		p.top = n
	}
	return p, true
}

func parseLimit(w http.ResponseWriter, q url.Values) (int, bool) {
	v := q.Get(schemas.ParamLimit)
	if v == "" {
		return 0, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > schemas.MaxLimit {
		badParam(w, schemas.ParamLimit, v, fmt.Sprintf("an integer 1..%d", schemas.MaxLimit))
		return 0, false
	}
	return n, true
}

// onlyParams answers 400 for a parameter the endpoint does not know, so that
// a misspelt filter is not silently ignored.
func onlyParams(w http.ResponseWriter, q url.Values, allowed ...string) bool {
	for name := range q {
		ok := false
		for _, a := range allowed {
			ok = ok || a == name
		}
		if !ok {
			want := "no parameters"
			if len(allowed) > 0 {
				want = fmt.Sprintf("one of %v", allowed)
			}
			writeJSON(w, http.StatusBadRequest, apiError{Error: fmt.Sprintf("unknown parameter %q: expected %s", name, want), Parameter: name})
			return false
		}
	}
	return true
}

// list serves one list endpoint: from this instance's partitions with
// scope=local, otherwise gathered from every instance.
func list[T any](a *API, st state.Stream, run func(ctx context.Context, p listParams, limit int, cursor string) (schemas.Page[T], error),
	slowerFirst func(a, b T) int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		local, ok := a.scope(w, r, q)
		if !ok {
			return
		}
		p, ok := a.parseList(w, q, st)
		if !ok {
			return
		}
		if !p.since.IsZero() && !p.until.IsZero() && !p.until.After(p.since) {
			// running_longer_than moved until to since or before it:
			// nothing can match.
			writeJSON(w, http.StatusOK, schemas.Page[T]{Items: []T{}})
			return
		}
		if p.running {
			// The other instances get the cut-off this one computed, so
			// that one clock decides for the whole answer.
			q.Del(schemas.ParamRunningLongerThan)
			q.Set(schemas.ParamStatus, string(schemas.StatusPending))
			q.Set(schemas.ParamUntil, p.until.Format(time.RFC3339Nano))
		}
		query := func(limit int, cursor string) (schemas.Page[T], error) { return run(r.Context(), p, limit, cursor) }
		switch {
		case local:
			page, err := query(p.limit, p.cursor)
			writePage(a, w, r, page, err)
		case p.top > 0:
			gatherTop(a, w, r, q, st, p, query, slowerFirst)
		default:
			gather(a, w, r, q, st, p, query)
		}
	}
}

func (a *API) events(ctx context.Context, p listParams, limit int, cursor string) (schemas.Page[schemas.EventMetric], error) {
	return a.store.Events(ctx, state.EventQuery{Status: p.status, SlowerThan: p.slowerThan, Limit: limit, Cursor: cursor,
		EventName: p.eventName, PipelineID: p.pipelineID, Since: p.since, Until: p.until, Top: p.top})
}

func (a *API) network(ctx context.Context, p listParams, limit int, cursor string) (schemas.Page[schemas.NetworkMetric], error) {
	return a.store.NetworkOps(ctx, state.NetworkQuery{Status: p.status, SlowerThan: p.slowerThan, Limit: limit, Cursor: cursor,
		Since: p.since, Until: p.until, Top: p.top})
}

func writePage[T any](a *API, w http.ResponseWriter, r *http.Request, page schemas.Page[T], err error) {
	if errors.Is(err, state.ErrBadCursor) {
		writeJSON(w, http.StatusBadRequest, apiError{Error: err.Error(), Parameter: schemas.ParamCursor})
		return
	}
	if errors.Is(err, state.ErrTopScanBound) {
		writeJSON(w, http.StatusBadRequest, apiError{Error: err.Error(), Parameter: schemas.ParamTop})
		return
	}
	if err != nil {
		a.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

func (a *API) retries(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	local, ok := a.scope(w, r, q)
	if !ok || !onlyParams(w, q) {
		return
	}
	if !local {
		a.gatherRetries(w, r)
		return
	}
	s, err := a.store.RetryStats()
	if err != nil {
		a.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s)
}

// scope reads and removes the scope parameter, so that the endpoints' own
// parameter checks are unchanged, and reports whether the request is to be
// answered from this instance's partitions only: scope=local, a request
// another instance forwarded, or an API without a cluster.
func (a *API) scope(w http.ResponseWriter, r *http.Request, q url.Values) (local, ok bool) {
	v := q.Get(schemas.ParamScope)
	q.Del(schemas.ParamScope)
	if v != "" && v != schemas.ScopeLocal && v != schemas.ScopeCluster {
		badParam(w, schemas.ParamScope, v, "one of cluster, local")
		return false, false
	}
	return a.cluster == nil || v == schemas.ScopeLocal || r.Header.Get(ForwardedHeader) != "", true
}

func unavailable(w http.ResponseWriter, err error) {
	writeJSON(w, http.StatusServiceUnavailable, apiError{Error: err.Error()})
}

// topic is the input topic of a stream.
func (a *API) topic(st state.Stream) string {
	if st == state.Network {
		return a.cluster.cfg.NetworkTopic
	}
	return a.cluster.cfg.EventsTopic
}

// routeElsewhere answers a lookup of a task this store does not hold: it
// forwards the request to the instance serving the task's partition and
// relays its answer, or answers 503 when that instance is unknown or
// unreachable. It returns false when the local "not found" is the answer:
// there is no cluster, or this instance serves the partition.
func (a *API) routeElsewhere(w http.ResponseWriter, r *http.Request, st state.Stream, taskID string) bool {
	if a.cluster == nil {
		return false
	}
	ctx := r.Context()
	topic := a.topic(st)
	part, err := a.cluster.partition(ctx, topic, taskID)
	if err != nil {
		unavailable(w, fmt.Errorf("cannot find the partition of task_id %q: %w", taskID, err))
		return true
	}
	if slices.Contains(a.store.Owned(st), int32(part)) {
		return false
	}
	if r.Header.Get(ForwardedHeader) != "" {
		// Never forward twice: the sender's routing table is stale.
		unavailable(w, &RouteError{Topic: topic, Partition: part,
			Err: fmt.Errorf("%w: the instance at %s was asked for it but does not serve it (the group is rebalancing)", ErrNoOwner, a.cluster.cfg.AdvertiseHTTP)})
		return true
	}
	owner, err := a.cluster.owner(ctx, topic, part)
	if err != nil {
		unavailable(w, err)
		return true
	}
	if owner.self {
		unavailable(w, &RouteError{Topic: topic, Partition: part,
			Err: fmt.Errorf("%w yet: it is being assigned to this instance", ErrNoOwner)})
		return true
	}
	resp, err := a.cluster.get(ctx, owner.addr, r.URL.RequestURI())
	if err != nil {
		a.cluster.invalidate()
		unavailable(w, &RouteError{Topic: topic, Partition: part, Addr: owner.addr, Err: err})
		return true
	}
	defer resp.Body.Close()
	body, err := readMemberBody(resp.Body)
	if err != nil {
		unavailable(w, &RouteError{Topic: topic, Partition: part, Addr: owner.addr, Err: err})
		return true
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(body)
	return true
}

// gather answers a list request for the whole group: each instance serving
// partitions of the stream's topic is asked for its own partitions, in
// address order, with the part of the limit still open. This instance reads
// its store directly; when it is the whole group the answer is exactly the
// local one.
func gather[T any](a *API, w http.ResponseWriter, r *http.Request, q url.Values, st state.Stream, p listParams,
	local func(limit int, cursor string) (schemas.Page[T], error)) {
	ctx := r.Context()
	rt, err := a.cluster.servingAll(ctx, a.topic(st))
	if err != nil {
		unavailable(w, err)
		return
	}
	if rt.onlySelf() && !isClusterCursor(p.cursor) {
		page, err := local(p.limit, p.cursor)
		writePage(a, w, r, page, err)
		return
	}
	members, fingerprint := rt.serving(a.topic(st))
	fetch := func(m member, limit int, cursor string) (rawPage, error) {
		if m.self {
			page, err := local(limit, cursor)
			if err != nil {
				return rawPage{}, err
			}
			return rawItems(page)
		}
		var page rawPage
		err := a.cluster.getJSON(ctx, m.addr, r.URL.Path+"?"+localQuery(q, limit, cursor), &page)
		return page, err
	}
	page, err := mergePages(members, fingerprint, p.cursor, p.limit, fetch)
	writeMerged(a, w, r, page, err)
}

// writeMerged writes a page gathered from the group, or why it could not
// be: another instance's error answer is relayed as it is.
func writeMerged(a *API, w http.ResponseWriter, r *http.Request, page rawPage, err error) {
	var me *MemberError
	switch {
	case errors.Is(err, ErrAssignmentChanged):
		writeJSON(w, http.StatusConflict, apiError{Error: err.Error(), Parameter: schemas.ParamCursor})
	case errors.As(err, &me) && me.Status == 0:
		unavailable(w, err)
	case errors.As(err, &me) && me.Err != nil:
		writeJSON(w, me.Status, apiError{Error: err.Error()})
	case errors.As(err, &me):
		relay(w, me.Status, me.Body)
	default:
		writePage(a, w, r, page, err)
	}
}

// gatherTop answers a top=N list for the whole group: every instance
// serving the stream's topic answers its own N slowest, and the N slowest
// of those are the group's. No cursor: the answer is one page.
func gatherTop[T any](a *API, w http.ResponseWriter, r *http.Request, q url.Values, st state.Stream, p listParams,
	local func(limit int, cursor string) (schemas.Page[T], error), slowerFirst func(a, b T) int) {
	ctx := r.Context()
	rt, err := a.cluster.servingAll(ctx, a.topic(st))
	if err != nil {
		unavailable(w, err)
		return
	}
	if rt.onlySelf() {
		page, err := local(0, "")
		writePage(a, w, r, page, err)
		return
	}
	members, _ := rt.serving(a.topic(st))
	type item struct {
		raw json.RawMessage
		m   T
	}
	var all []item
	lq := url.Values{}
	for k, v := range q {
		lq[k] = v
	}
	lq.Set(schemas.ParamScope, schemas.ScopeLocal)
	for _, m := range members {
		var page rawPage
		var err error
		if m.self {
			var lp schemas.Page[T]
			if lp, err = local(0, ""); err == nil {
				page, err = rawItems(lp)
			}
		} else {
			err = a.cluster.getJSON(ctx, m.addr, r.URL.Path+"?"+lq.Encode(), &page)
		}
		if err != nil {
			writeMerged(a, w, r, rawPage{}, err)
			return
		}
		for _, raw := range page.Items {
			var it T
			if err := json.Unmarshal(raw, &it); err != nil {
				writeMerged(a, w, r, rawPage{}, &MemberError{Addr: m.addr, Status: http.StatusBadGateway, Body: raw,
					Err: fmt.Errorf("cannot decode a list item: %w", err)})
				return
			}
			all = append(all, item{raw, it})
		}
	}
	slices.SortStableFunc(all, func(x, y item) int { return slowerFirst(x.m, y.m) })
	out := rawPage{Items: []json.RawMessage{}}
	for _, it := range all[:min(p.top, len(all))] {
		out.Items = append(out.Items, it.raw)
	}
	writeJSON(w, http.StatusOK, out)
}

// gatherRetries sums the retry statistics of every instance.
func (a *API) gatherRetries(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	rt, err := a.cluster.servingAll(ctx, a.cluster.cfg.EventsTopic)
	if err != nil {
		unavailable(w, err)
		return
	}
	members, _ := rt.serving(a.cluster.cfg.EventsTopic)
	parts := make([]schemas.RetrySummary, 0, len(members))
	for _, m := range members {
		var s schemas.RetrySummary
		if m.self {
			s, err = a.store.RetryStats()
		} else {
			err = a.cluster.getJSON(ctx, m.addr, schemas.PathRetries+"?"+schemas.ParamScope+"="+schemas.ScopeLocal, &s)
		}
		var me *MemberError
		switch {
		case errors.As(err, &me) && me.Status == 0:
			unavailable(w, err)
			return
		case errors.As(err, &me) && me.Err != nil:
			writeJSON(w, me.Status, apiError{Error: err.Error()})
			return
		case errors.As(err, &me):
			relay(w, me.Status, me.Body)
			return
		case err != nil:
			a.internalError(w, r, err)
			return
		}
		parts = append(parts, s)
	}
	writeJSON(w, http.StatusOK, mergeRetries(parts...))
}

// relay writes another instance's error answer as it is.
func relay(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

// rawItems encodes a local page's items as the API writes them, so that
// local and relayed items of a merged page are alike.
func rawItems[T any](page schemas.Page[T]) (rawPage, error) {
	out := rawPage{Items: make([]json.RawMessage, 0, len(page.Items)), Next: page.Next}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, it := range page.Items {
		buf.Reset()
		if err := enc.Encode(it); err != nil {
			return rawPage{}, fmt.Errorf("cannot encode a list item: %w", err)
		}
		out.Items = append(out.Items, json.RawMessage(bytes.TrimSuffix(bytes.Clone(buf.Bytes()), []byte("\n"))))
	}
	return out, nil
}
