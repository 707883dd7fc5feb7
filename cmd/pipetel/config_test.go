package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pipetel.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestExampleConfigIsValid(t *testing.T) {
	f := runFlags{config: "../../deploy/pipetel.yaml"}
	cfg, err := f.load()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.State.Retention != 24*time.Hour || cfg.Processor.BatchWait != 20*time.Millisecond || cfg.HTTP.Listen != "127.0.0.1:9464" ||
		cfg.State.maxLabelValues() != 1000 {
		t.Fatalf("example config decoded to %+v", cfg)
	}
}

func TestConfigErrors(t *testing.T) {
	f := func(body string, flags runFlags, want string) {
		t.Helper()
		flags.config = writeConfig(t, body)
		_, err := flags.load()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("config %q: error %v, want one containing %q", body, err, want)
		}
	}
	base := "processor: {brokers: [\"127.0.0.1:9092\"]}\nstate: {dir: /tmp/x}\n"
	f("processor: {brokers: [a:1], batch_sise: 5}\n", runFlags{}, "field batch_sise not found")
	f("sinks: {prometheus: {bukets: [1]}}\n", runFlags{}, "field bukets not found")
	f("state: {dir: /tmp/x}\n", runFlags{}, "processor.brokers: got [], expected at least one host:port address")
	f("processor: {brokers: [a:1]}\n", runFlags{}, `state.dir: got "", expected a directory for the state store`)
	f(base+"log: {level: loud}\n", runFlags{}, `log.level: got "loud", expected one of debug, info, warn, error`)
	f(base+"processor: {batch_size: 20000}\n", runFlags{}, "mapping key \"processor\" already defined")
	f("processor: {brokers: [a:1], batch_size: 20000}\nstate: {dir: /tmp/x}\n", runFlags{}, "processor.batch_size: got 20000, expected an integer 1..10000")
	f("processor: {brokers: [a:1], session_timeout: 1s, heartbeat_interval: 2s}\nstate: {dir: /tmp/x}\n", runFlags{}, "processor.heartbeat_interval: got 2s, expected a duration > 0 and below session_timeout")
	f("processor: {brokers: [a:1], batch_wait: soon}\nstate: {dir: /tmp/x}\n", runFlags{}, "cannot unmarshal !!str `soon` into time.Duration")
	f("processor: {brokers: [a:1]}\nstate: {dir: /tmp/x, max_cached_open: -2}\n", runFlags{}, "state.max_cached_open: got -2, expected -1 (off) or 0 and up (0: the default, 100000)")
	f(base+"http: {idle_timeout: -1s}\n", runFlags{}, "http.idle_timeout: got -1s, expected a duration > 0 (0: the default)")
	for _, n := range []string{"0", "-5"} {
		f("processor: {brokers: [a:1]}\nstate: {dir: /tmp/x, max_label_values: "+n+"}\n", runFlags{},
			"state.max_label_values: got "+n+", expected an integer >= 1 (unset: the default, 1000)")
	}
	f("processor: {brokers: [a:1]}\nstate: {dir: /tmp/x, max_label_values: many}\n", runFlags{}, "cannot unmarshal !!str `many` into int")
}

// TestConfigMaxLabelValues: state.max_label_values defaults to 1000 and
// takes any integer from 1.
func TestConfigMaxLabelValues(t *testing.T) {
	for _, tc := range []struct {
		state string
		want  int
	}{{"{dir: /tmp/x}", 1000}, {"{dir: /tmp/x, max_label_values: 1}", 1}, {"{dir: /tmp/x, max_label_values: 250000}", 250000}} {
		f := runFlags{config: writeConfig(t, "processor: {brokers: [a:1]}\nstate: "+tc.state+"\n")}
		cfg, err := f.load()
		if err != nil {
			t.Fatalf("state %s: %v", tc.state, err)
		}
		if got := cfg.State.maxLabelValues(); got != tc.want {
			t.Errorf("state %s: max_label_values %d, want %d", tc.state, got, tc.want)
		}
	}
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
