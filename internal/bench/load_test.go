package bench

import (
	"reflect"
	"testing"
	"time"

	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/schemas"
)

func generated(t *testing.T, tasks int, seed uint64, now time.Time) []schemas.Record {
	t.Helper()
	var recs []schemas.Record
	if err := Generate(tasks, seed, now, func(r schemas.Record) error { recs = append(recs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestGenerate: every task is a start, 0–3 retries and an end, in that
// order, emitted in record-time order, valid by the record contract, and
// reproducible from the seed.
func TestGenerate(t *testing.T) {
	now := testclock.Now()
	const tasks = 5000
	recs := generated(t, tasks, 1, now)
	type seen struct{ start, end, retries int }
	per := map[string]*seen{}
	for i, r := range recs {
		if i > 0 && r.Time.Before(recs[i-1].Time) {
			t.Fatalf("record %d at %v before record %d at %v", i, r.Time, i-1, recs[i-1].Time)
		}
		if !r.Time.Before(now.Add(-time.Minute)) {
			t.Fatalf("record %d at %v, want before %v", i, r.Time, now.Add(-time.Minute))
		}
		v, err := schemas.Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := schemas.Decode(v); err != nil {
			t.Fatalf("record %d does not decode: %v", i, err)
		}
		s := per[r.TaskID]
		if s == nil {
			s = &seen{}
			per[r.TaskID] = s
		}
		switch r.Kind {
		case schemas.KindStart:
			if s.start+s.end+s.retries != 0 {
				t.Fatalf("task %s: start after another record", r.TaskID)
			}
			s.start++
		case schemas.KindRetry:
			if s.start != 1 || s.end != 0 {
				t.Fatalf("task %s: retry out of order", r.TaskID)
			}
			s.retries++
		case schemas.KindEnd:
			if s.start != 1 || s.end != 0 {
				t.Fatalf("task %s: end out of order", r.TaskID)
			}
			s.end++
		}
	}
	if len(per) != tasks {
		t.Fatalf("%d tasks, want %d", len(per), tasks)
	}
	byRetries := map[int]int{}
	for id, s := range per {
		if s.start != 1 || s.end != 1 || s.retries > 3 {
			t.Fatalf("task %s: %+v", id, *s)
		}
		byRetries[s.retries]++
	}
	for r := range 4 {
		if byRetries[r] == 0 {
			t.Errorf("no task with %d retries in %v", r, byRetries)
		}
	}
	if again := generated(t, tasks, 1, now); !reflect.DeepEqual(again, recs) {
		t.Error("the same seed gave other records")
	}
	if other := generated(t, tasks, 2, now); reflect.DeepEqual(other, recs) {
		t.Error("another seed gave the same records")
	}
}

func TestProcessorConfig(t *testing.T) {
	f := func(user, want string) {
		t.Helper()
		got, err := processorConfig(user, []string{"127.0.0.1:1"}, "/s", "127.0.0.1:2", nil)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("processorConfig(%q):\n%s\nwant:\n%s", user, got, want)
		}
	}
	f("", "http:\n    listen: 127.0.0.1:2\nlog:\n    level: warn\nprocessor:\n    brokers:\n        - 127.0.0.1:1\n    group_id: pipetel-bench\nstate:\n    dir: /s\n")
	f("http: {pprof: true, listen: 0.0.0.0:1}\nlog: {level: info}\nprocessor: {batch_size: 5000}\n",
		"http:\n    listen: 127.0.0.1:2\n    pprof: true\nlog:\n    level: info\nprocessor:\n    batch_size: 5000\n    brokers:\n        - 127.0.0.1:1\n    group_id: pipetel-bench\nstate:\n    dir: /s\n")
	if _, err := processorConfig("processor: [", nil, "", "", nil); err == nil {
		t.Error("a config that does not decode was accepted")
	}
}
