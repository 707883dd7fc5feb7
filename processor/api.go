package processor

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
)

// API serves the query endpoints over the partitions this instance owns.
type API struct {
	store *state.Store
}

// NewAPI returns the query API over store.
func NewAPI(store *state.Store) *API { return &API{store: store} }

// Register adds the API's routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/events/{task_id...}", a.event)
	mux.HandleFunc("GET /api/v1/events", a.events)
	mux.HandleFunc("GET /api/v1/network/{task_id...}", a.networkOp)
	mux.HandleFunc("GET /api/v1/network", a.network)
	mux.HandleFunc("GET /api/v1/retries", a.retries)
}

// apiError is the body of every error response.
type apiError struct {
	Error     string `json:"error"`
	Parameter string `json:"parameter,omitempty"`
}

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

func internalError(w http.ResponseWriter, err error) {
	writeJSON(w, http.StatusInternalServerError, apiError{Error: err.Error()})
}

func (a *API) event(w http.ResponseWriter, r *http.Request) {
	if !onlyParams(w, r.URL.Query()) {
		return
	}
	id := r.PathValue("task_id")
	m, found, err := a.store.Event(id)
	if err != nil {
		internalError(w, err)
		return
	}
	if !found {
		writeJSON(w, http.StatusNotFound, apiError{Error: fmt.Sprintf("no event with task_id %q", id)})
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func (a *API) networkOp(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !onlyParams(w, q, "op_id") {
		return
	}
	id := r.PathValue("task_id")
	m, found, err := a.store.NetworkOp(id, q.Get("op_id"))
	if err != nil {
		internalError(w, err)
		return
	}
	if !found {
		writeJSON(w, http.StatusNotFound, apiError{Error: fmt.Sprintf("no network operation with task_id %q and op_id %q", id, q.Get("op_id"))})
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
	if !onlyParams(w, q, "status", "slower_than", "limit", "cursor") {
		return p, false
	}
	if v := q.Get("status"); v != "" {
		for _, s := range statuses {
			if string(s) == v {
				p.status = s
			}
		}
		if p.status == "" {
			badParam(w, "status", v, "one of pending, completed, failed, timed_out, orphan")
			return p, false
		}
	}
	if v := q.Get("slower_than"); v != "" {
		d, err := parseDuration(v)
		if err != nil || d < 0 {
			badParam(w, "slower_than", v, "a non-negative duration such as 1.5s, 250ms or 2 (seconds)")
			return p, false
		}
		p.slowerThan = d
		if p.status == schemas.StatusPending {
			badParam(w, "status", "pending", "a finished status when slower_than is set: pending metrics have no duration")
			return p, false
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > state.MaxLimit {
			badParam(w, "limit", v, fmt.Sprintf("an integer 1..%d", state.MaxLimit))
			return p, false
		}
		p.limit = n
	}
	p.cursor = q.Get("cursor")
	return p, true
}

func parseDuration(v string) (time.Duration, error) {
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

func (a *API) events(w http.ResponseWriter, r *http.Request) {
	p, ok := parseList(w, r.URL.Query())
	if !ok {
		return
	}
	page, err := a.store.Events(state.EventQuery{Status: p.status, SlowerThan: p.slowerThan, Limit: p.limit, Cursor: p.cursor})
	writePage(w, page, err)
}

func (a *API) network(w http.ResponseWriter, r *http.Request) {
	p, ok := parseList(w, r.URL.Query())
	if !ok {
		return
	}
	page, err := a.store.NetworkOps(state.NetworkQuery{Status: p.status, SlowerThan: p.slowerThan, Limit: p.limit, Cursor: p.cursor})
	writePage(w, page, err)
}

func writePage[T any](w http.ResponseWriter, page state.Page[T], err error) {
	if errors.Is(err, state.ErrBadCursor) {
		writeJSON(w, http.StatusBadRequest, apiError{Error: err.Error(), Parameter: "cursor"})
		return
	}
	if err != nil {
		internalError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

func (a *API) retries(w http.ResponseWriter, r *http.Request) {
	if !onlyParams(w, r.URL.Query()) {
		return
	}
	s, err := a.store.RetryStats()
	if err != nil {
		internalError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s)
}
