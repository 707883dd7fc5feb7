package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
