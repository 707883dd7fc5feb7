package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/pipetel/pipetel/internal/bench"
	"github.com/pipetel/pipetel/schemas"
)

// TestBenchCommand runs pipetel bench on a few thousand tasks and checks the
// JSON line: every generated record and task counted, figures consistent.
func TestBenchCommand(t *testing.T) {
	bin := buildPipetel(t)
	const tasks = 3000
	var records int64
	if err := bench.Generate(tasks, 1, time.Now(), func(schemas.Record) error { records++; return nil }); err != nil {
		t.Fatal(err)
	}
	var out, progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err := benchCommand(ctx, []string{"--tasks", "3000", "--partitions", "4", "--binary", bin, "--dir", t.TempDir(), "--timeout", "2m"}, &out, &progress)
	if err != nil {
		t.Fatalf("bench: %v\nprogress:\n%s", err, progress.String())
	}
	var res bench.Result
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("cannot decode %q: %v", out.String(), err)
	}
	if res.Tasks != tasks || res.Records != records || res.Partitions != 4 {
		t.Errorf("tasks %d records %d partitions %d, want %d, %d, 4", res.Tasks, res.Records, res.Partitions, tasks, records)
	}
	if res.ElapsedSeconds <= 0 || res.RecordsPerSecond != float64(res.Records)/res.ElapsedSeconds ||
		res.TasksPerSecond != float64(tasks)/res.ElapsedSeconds {
		t.Errorf("rates do not follow from the counts and the time: %+v", res)
	}
	if res.PeakRSSMiB <= 0 || res.StateBytes <= 0 || res.ChangelogRecords <= 0 {
		t.Errorf("peak RSS, state size and changelog records must be measured: %+v", res)
	}
}
