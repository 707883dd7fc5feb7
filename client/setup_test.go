package client_test

import (
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/pipetel/pipetel/internal/querytest"
	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/query"
	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
)

// t0 is an hour before the test clock: the pending task started then.
var t0 = testclock.Now().Add(-time.Hour).Truncate(time.Second)

func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

func ev(kind schemas.Kind, task string, sec float64, errText string) schemas.Record {
	r := schemas.Record{Schema: schemas.EventSchema, Kind: kind, TaskID: task, Time: at(sec), Error: errText}
	if kind == schemas.KindStart {
		r.EventName, r.PipelineID = "transform", "nightly"
	}
	return r
}

func op(kind schemas.Kind, task, opID string, sec float64, errText string) schemas.Record {
	r := schemas.Record{Schema: schemas.NetworkSchema, Kind: kind, TaskID: task, OpID: opID, Time: at(sec), Error: errText}
	if kind == schemas.KindStart {
		r.Host, r.Port, r.Operation = "db.internal", 5432, "db_query"
	} else {
		r.BytesSent, r.BytesReceived = 120, 4096
	}
	return r
}

// newServer serves the real query API over a real state store, in memory,
// holding (one partition per stream):
//
//	events:  t-1 completed 0.5 s; t-2 failed 2 s ("boom") after 2 retries;
//	         t-3 completed 3 s after 1 retry; t-4 started an hour ago, running
//	network: t-1/q1 completed 0.25 s; t-1/q2 completed 0.125 s; t-2/q1 failed 1.5 s ("connection reset")
//
// Its clock is the tests' (running_longer_than is measured against it).
func newServer() (url string, closeAll func()) {
	s, err := state.Open(state.Options{NoSync: true})
	if err != nil {
		panic(err)
	}
	evUnit, netUnit := state.Unit{Stream: state.Events}, state.Unit{Stream: state.Network}
	for _, u := range []state.Unit{evUnit, netUnit} {
		if err := s.Own(u); err != nil {
			panic(err)
		}
	}
	start, end, retry := schemas.KindStart, schemas.KindEnd, schemas.KindRetry
	must(querytest.Apply(s, evUnit,
		ev(start, "t-1", 0, ""), ev(end, "t-1", 0.5, ""),
		ev(start, "t-2", 0, ""), ev(retry, "t-2", 0.5, ""), ev(retry, "t-2", 1, ""), ev(end, "t-2", 2, "boom"),
		ev(start, "t-3", 0, ""), ev(retry, "t-3", 1, ""), ev(end, "t-3", 3, ""),
		ev(start, "t-4", 0, "")))
	must(querytest.Apply(s, netUnit,
		op(start, "t-1", "q1", 0, ""), op(end, "t-1", "q1", 0.25, ""),
		op(start, "t-1", "q2", 1, ""), op(end, "t-1", "q2", 1.125, ""),
		op(start, "t-2", "q1", 0, ""), op(end, "t-2", "q1", 1.5, "connection reset")))
	mux := http.NewServeMux()
	query.NewAPI(s, query.WithClock(testclock.Now)).Register(mux)
	srv := httptest.NewServer(mux)
	return srv.URL, func() { srv.Close(); s.Close() }
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}
