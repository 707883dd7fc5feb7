package processor

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
)

// TestOpenCacheSpillJoinsExactly: the same records give the same events,
// retry statistics and aggregates whether the open-task cache holds every
// open task, spills past a bound of 3 and loads again, or is off.
func TestOpenCacheSpillJoinsExactly(t *testing.T) {
	var recs []schemas.Record
	// Twenty tasks open at once (past the bound), then they finish, retry,
	// time out or stay orphans; then a second wave under the bound.
	for i := range 20 {
		id := fmt.Sprintf("a%02d", i)
		recs = append(recs, evStart(id, float64(i)))
		if i%3 == 0 {
			recs = append(recs, evRetry(id, float64(i)+0.5))
		}
	}
	for i := range 20 {
		id := fmt.Sprintf("a%02d", i)
		switch i % 4 {
		case 0, 1:
			recs = append(recs, evRetry(id, float64(30+i)), evEnd(id, float64(40+i), ""))
		case 2:
			recs = append(recs, evEnd(id, float64(40+i), "boom"), evEnd(id, float64(41+i), "again")) // a duplicate end
		case 3: // stays open: times out later
		}
	}
	recs = append(recs, evEnd("orphan", 70, ""))
	for i := range 5 {
		id := fmt.Sprintf("b%02d", i)
		recs = append(recs, evStart(id, float64(100+i)), evStart(id, float64(100+i)), evEnd(id, float64(110+i), ""))
	}
	recs = append(recs, evRetry("clock", 10_000)) // past every deadline
	outputs := map[string]string{}
	for _, tc := range []struct {
		name     string
		maxCache int
		batch    int
	}{{"complete", 0, 1}, {"complete, one batch", 0, 0}, {"spilling", 3, 1}, {"spilling, batches of 4", 3, 4}, {"off", -1, 1}} {
		s, err := state.Open(state.Options{Publishers: []string{"p"}, NoSync: true, MaxCachedOpen: tc.maxCache})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if err := s.Own(evUnit); err != nil {
			t.Fatal(err)
		}
		st := runBatches(t, s, expiryConfig(), tc.batch, recs)
		page, err := s.Events(context.Background(), state.EventQuery{Limit: schemas.MaxLimit})
		if err != nil {
			t.Fatal(err)
		}
		rs, _ := s.RetryStats()
		aggs, _ := s.Aggregates()
		b, _ := json.Marshal([]any{page, rs, aggs, st.applied, st.duplicates, st.finished, st.timedOut, st.orphans, s.OpenTasksOf(evUnit)})
		outputs[tc.name] = string(b)
	}
	for name, out := range outputs {
		if out != outputs["off"] {
			t.Errorf("%s differs from the cache off:\n%s\nwant:\n%s", name, out, outputs["off"])
		}
	}
}
