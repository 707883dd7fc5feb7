package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
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
	err := runPipetel(ctx, bin, append([]string{"bench"}, []string{"--tasks", "3000", "--partitions", "4", "--binary", bin, "--dir", t.TempDir(), "--timeout", "2m"}...), &out, &progress)
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

// TestBenchElasticsearch: with --elasticsearch the bench indexes every
// finished metric into the node, indexes the same documents again with
// plain _bulk requests, reports both rates from the one run, and removes its
// indexes afterwards.
func TestBenchElasticsearch(t *testing.T) {
	url := os.Getenv("PIPETEL_TEST_ELASTICSEARCH")
	if url == "" {
		t.Skip("PIPETEL_TEST_ELASTICSEARCH is not set (make test sets it)")
	}
	testElasticsearch(t) // shared lock: no outage test stops the node meanwhile
	bin := buildPipetel(t)
	var out, progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err := runPipetel(ctx, bin, append([]string{"bench"}, []string{"--tasks", "2000", "--partitions", "2", "--binary", bin, "--timeout", "2m", "--elasticsearch", url}...), &out, &progress)
	if err != nil {
		t.Fatalf("bench: %v\nprogress:\n%s", err, progress.String())
	}
	var res bench.Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("cannot decode %q: %v", out.String(), err)
	}
	if res.ElasticsearchDocs != 2000 {
		t.Errorf("elasticsearch_docs %d, want one per task, 2000", res.ElasticsearchDocs)
	}
	if res.PipetelDocsPerSecond != float64(res.ElasticsearchDocs)/res.DeliveredSeconds || res.BulkDocsPerSecond <= 0 ||
		res.ElasticsearchRatio != res.PipetelDocsPerSecond/res.BulkDocsPerSecond {
		t.Errorf("rates do not follow from the counts and times: %+v", res)
	}
	resp, err := http.Get(url + "/_cat/indices/pipetel-bench-*?format=json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var left []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&left); err != nil || len(left) != 0 {
		t.Errorf("the bench left indexes behind: %v (%v)", left, err)
	}
}

// runPipetel runs the built pipetel binary with args.
func runPipetel(ctx context.Context, bin string, args []string, stdout, stderr io.Writer) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	return cmd.Run()
}
