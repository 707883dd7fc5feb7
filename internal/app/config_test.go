package app

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
	f := testFlags{config: "../../deploy/pipetel.yaml"}
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
	f := func(body string, flags testFlags, want string) {
		t.Helper()
		flags.config = writeConfig(t, body)
		_, err := flags.load()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("config %q: error %v, want one containing %q", body, err, want)
		}
	}
	base := "processor: {brokers: [\"127.0.0.1:9092\"]}\nstate: {dir: /tmp/x}\n"
	f("processor: {brokers: [a:1], batch_sise: 5}\n", testFlags{}, "field batch_sise not found in processor")
	f("sinks: {prometheus: {bukets: [1]}}\n", testFlags{}, "field bukets not found in sinks.prometheus")
	f("kafka: {sasl: {mechanizm: PLAIN}}\n", testFlags{}, "field mechanizm not found in kafka.sasl")
	f("statee: {dir: /tmp/x}\n", testFlags{}, "field statee not found in the top level")
	f("state: {dir: /tmp/x}\n", testFlags{}, "processor.brokers: got [], expected at least one host:port address")
	f("processor: {brokers: [a:1]}\n", testFlags{}, `state.dir: got "", expected a directory for the state store`)
	f(base+"log: {level: loud}\n", testFlags{}, `log.level: got "loud", expected one of debug, info, warn, error`)
	f(base+"processor: {batch_size: 20000}\n", testFlags{}, "mapping key \"processor\" already defined")
	f("processor: {brokers: [a:1], batch_size: 20000}\nstate: {dir: /tmp/x}\n", testFlags{}, "processor.batch_size: got 20000, expected an integer 1..10000")
	f("processor: {brokers: [a:1], session_timeout: 1s, heartbeat_interval: 2s}\nstate: {dir: /tmp/x}\n", testFlags{}, "processor.heartbeat_interval: got 2s, expected a duration > 0 and below session_timeout")
	f("processor: {brokers: [a:1], batch_wait: soon}\nstate: {dir: /tmp/x}\n", testFlags{}, "cannot unmarshal !!str `soon` into time.Duration")
	f("processor: {brokers: [a:1]}\nstate: {dir: /tmp/x, max_cached_open: -2}\n", testFlags{}, "state.max_cached_open: got -2, expected -1 (off) or 0 and up (0: the default, 100000)")
	f(base+"http: {idle_timeout: -1s}\n", testFlags{}, "http.idle_timeout: got -1s, expected a duration > 0 (0: the default)")
	for _, n := range []string{"0", "-5"} {
		f("processor: {brokers: [a:1]}\nstate: {dir: /tmp/x, max_label_values: "+n+"}\n", testFlags{},
			"state.max_label_values: got "+n+", expected an integer >= 1 (unset: the default, 1000)")
	}
	f("processor: {brokers: [a:1]}\nstate: {dir: /tmp/x, max_label_values: many}\n", testFlags{}, "cannot unmarshal !!str `many` into int")
}

// TestConfigMaxLabelValues: state.max_label_values defaults to 1000 and
// takes any integer from 1.
func TestConfigMaxLabelValues(t *testing.T) {
	for _, tc := range []struct {
		state string
		want  int
	}{{"{dir: /tmp/x}", 1000}, {"{dir: /tmp/x, max_label_values: 1}", 1}, {"{dir: /tmp/x, max_label_values: 250000}", 250000}} {
		f := testFlags{config: writeConfig(t, "processor: {brokers: [a:1]}\nstate: "+tc.state+"\n")}
		cfg, err := f.load()
		if err != nil {
			t.Fatalf("state %s: %v", tc.state, err)
		}
		if got := cfg.State.maxLabelValues(); got != tc.want {
			t.Errorf("state %s: max_label_values %d, want %d", tc.state, got, tc.want)
		}
	}
}

// testFlags loads a file as pipetel run does without flags.
type testFlags struct{ config string }

func (f testFlags) load() (Config, error) {
	cfg, err := LoadConfig(f.config)
	if err != nil {
		return cfg, err
	}
	cfg.ApplyEnv()
	cfg.WithDefaults()
	return cfg, cfg.Validate()
}
