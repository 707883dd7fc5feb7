package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipetel/pipetel/client"
	"github.com/pipetel/pipetel/internal/querytest"
	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/query"
	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pipetel.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFlagsOverrideConfig(t *testing.T) {
	path := writeConfig(t, "processor: {brokers: [\"file:1\"], group_id: g1}\nstate: {dir: /from/file}\nhttp: {listen: 127.0.0.1:1}\n")
	f, err := parseRunFlags("run", []string{"--config", path, "--brokers", "a:1,b:2", "--state-dir", "/from/flag", "--listen", "127.0.0.1:2", "--group", "g2",
		"--advertise-http", "pipetel-1.pipetel-members.telemetry.svc:9464"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := f.load()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Processor.Brokers, ",") != "a:1,b:2" || cfg.State.Dir != "/from/flag" || cfg.HTTP.Listen != "127.0.0.1:2" || cfg.Processor.GroupID != "g2" ||
		cfg.Processor.AdvertiseHTTP != "pipetel-1.pipetel-members.telemetry.svc:9464" {
		t.Fatalf("flags did not override: %+v", cfg)
	}
}

func TestBrokersFromEnvironment(t *testing.T) {
	t.Setenv("PIPETEL_BROKERS", "env:1,env:2")
	f := runFlags{config: writeConfig(t, "state: {dir: /tmp/x}\n")}
	cfg, err := f.load()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Processor.Brokers, ",") != "env:1,env:2" {
		t.Fatalf("brokers %v", cfg.Processor.Brokers)
	}
}

// TestConfigPrint: the effective configuration, with the environment's
// secrets redacted and the defaults filled in, decodes again as it was.
func TestConfigPrint(t *testing.T) {
	t.Setenv("PIPETEL_KAFKA_PASSWORD", "kafka-secret")
	t.Setenv("PIPETEL_HTTP_TOKEN", "http-secret")
	path := writeConfig(t, "kafka: {sasl: {mechanism: PLAIN, username: u}}\nprocessor: {brokers: [\"a:1\"]}\nstate: {dir: /tmp/x}\n")
	var out strings.Builder
	if err := configCommand([]string{"print", "--config", path, "--group", "g9"}, &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, secret := range []string{"kafka-secret", "http-secret"} {
		if strings.Contains(got, secret) {
			t.Errorf("config print shows a secret:\n%s", got)
		}
	}
	for _, want := range []string{"password: <redacted>", "auth_token: <redacted>", "group_id: g9", "batch_size: 5000", "retention: 24h0m0s"} {
		if !strings.Contains(got, want) {
			t.Errorf("config print lacks %q:\n%s", want, got)
		}
	}
	if err := configCommand([]string{"show"}, &out); err == nil {
		t.Error("config show: no error")
	}
}

// TestQueryFilters runs pipetel query's list flags against the real API over
// a store holding, an hour before the test clock t0:
//
//	events:  ok load/p1 0..1 s; slow load/p1 0..3 s; run transform/p2 started at t0, running;
//	         new load/p1 started 10 s before the clock, running
//	network: ok/q1 0..0.5 s; ok/q2 0..2 s failed ("reset")
func TestQueryFilters(t *testing.T) {
	t0 := testclock.Now().Add(-time.Hour).Truncate(time.Second)
	at := func(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }
	s, err := state.Open(state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evUnit, netUnit := state.Unit{Stream: state.Events}, state.Unit{Stream: state.Network}
	for _, u := range []state.Unit{evUnit, netUnit} {
		if err := s.Own(u); err != nil {
			t.Fatal(err)
		}
	}
	ev := func(kind schemas.Kind, task, name, pipeline string, sec float64) schemas.Record {
		return schemas.Record{Schema: schemas.EventSchema, Kind: kind, TaskID: task, EventName: name, PipelineID: pipeline, Time: at(sec)}
	}
	start, end := schemas.KindStart, schemas.KindEnd
	if err := querytest.Apply(s, evUnit, ev(start, "ok", "load", "p1", 0), ev(end, "ok", "", "", 1),
		ev(start, "slow", "load", "p1", 0), ev(end, "slow", "", "", 3), ev(start, "run", "transform", "p2", 0),
		ev(start, "new", "load", "p1", 3590)); err != nil {
		t.Fatal(err)
	}
	op := func(kind schemas.Kind, opID string, sec float64, errText string) schemas.Record {
		return schemas.Record{Schema: schemas.NetworkSchema, Kind: kind, TaskID: "ok", OpID: opID, Host: "db", Port: 5432, Operation: "query", Time: at(sec), Error: errText}
	}
	if err := querytest.Apply(s, netUnit, op(start, "q1", 0, ""), op(end, "q1", 0.5, ""), op(start, "q2", 0, ""), op(end, "q2", 2, "reset")); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	query.NewAPI(s, query.WithClock(testclock.Now)).Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	// f checks the printed rows, cell by cell, header first.
	f := func(args string, want ...string) {
		t.Helper()
		var out, errOut strings.Builder
		if err := queryCommand(context.Background(), append([]string{"--addr", addr}, strings.Fields(args)...), &out, &errOut); err != nil {
			t.Errorf("query %s: %v (stderr %q)", args, err, errOut.String())
			return
		}
		var rows []string
		for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
			rows = append(rows, strings.Join(strings.Fields(line), " "))
		}
		if strings.Join(rows, "\n") != strings.Join(want, "\n") {
			t.Errorf("query %s:\n%s\nwant rows\n%s", args, strings.Join(rows, "\n"), strings.Join(want, "\n"))
		}
	}
	const evHeader = "TASK_ID EVENT_NAME STATUS DURATION RETRIES ERROR"
	const runHeader = "TASK_ID EVENT_NAME PIPELINE_ID START_TIME RETRIES"
	const netHeader = "TASK_ID OP_ID HOST PORT OPERATION STATUS LATENCY BYTES_SENT BYTES_RECEIVED ERROR"
	f("events --top 1", evHeader, "slow load completed 3s 0 -")
	f("events --event-name load --status completed", evHeader, "ok load completed 1s 0 -", "slow load completed 3s 0 -")
	f("events --pipeline-id p2", evHeader, "run transform pending - 0 -")
	f("events --since "+at(1).Format(time.RFC3339), evHeader, "new load pending - 0 -")
	f("events --until "+at(1).Format(time.RFC3339)+" --status pending", evHeader, "run transform pending - 0 -")
	f("running --longer-than 5m", runHeader, "run transform p2 "+at(0).Format(time.RFC3339Nano)+" 0")
	f("running", runHeader, "new load p1 "+at(3590).Format(time.RFC3339Nano)+" 0", "run transform p2 "+at(0).Format(time.RFC3339Nano)+" 0")
	f("running --event-name load --all --limit 1", runHeader, "new load p1 "+at(3590).Format(time.RFC3339Nano)+" 0")
	f("network --top 1", netHeader, "ok q2 db 5432 query failed 2s 0 0 reset")
	f("network --since "+at(0).Format(time.RFC3339)+" --status completed", netHeader, "ok q1 db 5432 query completed 500ms 0 0 -")
	f("operations ok --limit 1 --all", netHeader, "ok q1 db 5432 query completed 500ms 0 0 -", "ok q2 db 5432 query failed 2s 0 0 reset")
	f("operation ok --op-id q2", netHeader, "ok q2 db 5432 query failed 2s 0 0 reset")

	// A bad value is the API's 400, naming the parameter.
	for args, param := range map[string]string{"running --longer-than soon": schemas.ParamRunningLongerThan, "events --since yesterday": schemas.ParamSince,
		"events --top 2 --limit 5": schemas.ParamLimit, "network --until 12:00": schemas.ParamUntil} {
		err := queryCommand(context.Background(), append([]string{"--addr", addr}, strings.Fields(args)...), &strings.Builder{}, &strings.Builder{})
		var apiErr *client.Error
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || apiErr.Parameter != param {
			t.Errorf("query %s: %v, want the API's 400 naming %s", args, err, param)
		}
	}
	// Network lists have no event name: a flag error, before any request.
	if err := queryCommand(context.Background(), []string{"--addr", addr, "network", "--event-name", "x"}, &strings.Builder{}, &strings.Builder{}); err == nil ||
		err.Error() != "flag provided but not defined: -event-name" {
		t.Errorf("network --event-name: %v", err)
	}
}
