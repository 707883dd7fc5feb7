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
}

// APIOption configures NewAPI.
type APIOption func(*API)

// WithCluster makes the API answer for the whole consumer group through c.
// Default: none, the API answers from its store alone.
func WithCluster(c *Cluster) APIOption { return func(a *API) { a.cluster = c } }

// WithAPILogger sets where the API logs the causes of the 500s it answers
// (which name state keys, so they stay out of responses). Default: none.
func WithAPILogger(l *slog.Logger) APIOption { return func(a *API) { a.log = l } }

// NewAPI returns the query API over store.
func NewAPI(store *state.Store, opts ...APIOption) *API {
	a := &API{store: store, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(a)
	}
	return a
}

// Register adds the API's routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+schemas.PathEvents+"/{task_id...}", a.event)
	mux.HandleFunc("GET "+schemas.PathEvents, list(a, state.Events, a.events))
	mux.HandleFunc("GET "+schemas.PathNetwork+"/{task_id...}", a.networkOp)
	mux.HandleFunc("GET "+schemas.PathNetwork, list(a, state.Network, a.network))
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

// listParams are the parameters shared by the list endpoints.
type listParams struct {
	status     schemas.Status
	slowerThan time.Duration
	limit      int
	cursor     string
}

var statuses = []schemas.Status{schemas.StatusPending, schemas.StatusCompleted, schemas.StatusFailed, schemas.StatusTimedOut, schemas.StatusOrphan}

func parseList(w http.ResponseWriter, q url.Values) (listParams, bool) {
	var p listParams
	if !onlyParams(w, q, schemas.ParamStatus, schemas.ParamSlowerThan, schemas.ParamLimit, schemas.ParamCursor) {
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
	if v := q.Get(schemas.ParamSlowerThan); v != "" {
		d, err := schemas.ParseDuration(v)
		if err != nil || d < 0 {
			badParam(w, schemas.ParamSlowerThan, v, "a non-negative duration such as 1.5s, 250ms or 2 (seconds)")
			return p, false
		}
		p.slowerThan = d
		if p.status == schemas.StatusPending {
			badParam(w, schemas.ParamStatus, "pending", "a finished status when slower_than is set: pending metrics have no duration")
			return p, false
		}
	}
	if v := q.Get(schemas.ParamLimit); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > schemas.MaxLimit {
			badParam(w, schemas.ParamLimit, v, fmt.Sprintf("an integer 1..%d", schemas.MaxLimit))
			return p, false
		}
		p.limit = n
	}
	p.cursor = q.Get(schemas.ParamCursor)
	return p, true
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
func list[T any](a *API, st state.Stream, run func(ctx context.Context, p listParams, limit int, cursor string) (schemas.Page[T], error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		local, ok := a.scope(w, r, q)
		if !ok {
			return
		}
		p, ok := parseList(w, q)
		if !ok {
			return
		}
		query := func(limit int, cursor string) (schemas.Page[T], error) { return run(r.Context(), p, limit, cursor) }
		if local {
			page, err := query(p.limit, p.cursor)
			writePage(a, w, r, page, err)
			return
		}
		gather(a, w, r, q, st, p, query)
	}
}

func (a *API) events(ctx context.Context, p listParams, limit int, cursor string) (schemas.Page[schemas.EventMetric], error) {
	return a.store.Events(ctx, state.EventQuery{Status: p.status, SlowerThan: p.slowerThan, Limit: limit, Cursor: cursor})
}

func (a *API) network(ctx context.Context, p listParams, limit int, cursor string) (schemas.Page[schemas.NetworkMetric], error) {
	return a.store.NetworkOps(ctx, state.NetworkQuery{Status: p.status, SlowerThan: p.slowerThan, Limit: limit, Cursor: cursor})
}

func writePage[T any](a *API, w http.ResponseWriter, r *http.Request, page schemas.Page[T], err error) {
	if errors.Is(err, state.ErrBadCursor) {
		writeJSON(w, http.StatusBadRequest, apiError{Error: err.Error(), Parameter: schemas.ParamCursor})
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
