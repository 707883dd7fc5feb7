package query

import (
	"testing"
	"time"

	"github.com/pipetel/pipetel/internal/querytest"
	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
)

// t0 is the time origin of every test record, an hour before the test
// clock, whole seconds; record times are given as seconds after it so that
// durations are exact in float64.
var t0 = testclock.Now().Add(-time.Hour).Truncate(time.Second)

func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

func ptr[T any](v T) *T { return &v }

func evStart(task string, sec float64) schemas.Record {
	return schemas.Record{Schema: schemas.EventSchema, Kind: schemas.KindStart, TaskID: task, Time: at(sec),
		EventName: "ingest", PipelineID: "pl-1", ProcessID: ptr[int64](42)}
}

func evEnd(task string, sec float64, errText string) schemas.Record {
	return schemas.Record{Schema: schemas.EventSchema, Kind: schemas.KindEnd, TaskID: task, Time: at(sec), Error: errText}
}

func evRetry(task string, sec float64) schemas.Record {
	return schemas.Record{Schema: schemas.EventSchema, Kind: schemas.KindRetry, TaskID: task, Time: at(sec)}
}

func netStart(task, op string, sec float64) schemas.Record {
	return schemas.Record{Schema: schemas.NetworkSchema, Kind: schemas.KindStart, TaskID: task, OpID: op, Time: at(sec),
		Host: "db.internal", Port: 5432, Operation: "query"}
}

func netEnd(task, op string, sec float64, errText string) schemas.Record {
	return schemas.Record{Schema: schemas.NetworkSchema, Kind: schemas.KindEnd, TaskID: task, OpID: op, Time: at(sec),
		BytesSent: 100, BytesReceived: 2000, Error: errText}
}

// newStore opens an in-memory store with one publisher "p" and owns units.
func newStore(t *testing.T, units ...state.Unit) *state.Store {
	t.Helper()
	s, err := state.Open(state.Options{Publishers: []string{"p"}, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, u := range units {
		if err := s.Own(u); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// apply joins recs into u in one transaction.
func apply(t *testing.T, s *state.Store, u state.Unit, recs ...schemas.Record) {
	t.Helper()
	if err := querytest.Apply(s, u, recs...); err != nil {
		t.Fatalf("cannot apply batch: %v", err)
	}
}

var evUnit = state.Unit{Stream: state.Events, Partition: 0}
