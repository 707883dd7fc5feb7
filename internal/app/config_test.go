package app

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
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

// TestProductionExampleIsValid: the SASL/TLS example validates with its
// secrets from the environment, and says which one is missing without it.
func TestProductionExampleIsValid(t *testing.T) {
	const example = "../../deploy/examples/kafka-sasl-tls.yaml"
	t.Setenv("PIPETEL_ELASTICSEARCH_API_KEY", "k")
	t.Setenv("PIPETEL_GRAFANA_CLOUD_API_KEY", "g")
	t.Setenv("PIPETEL_KAFKA_CA_FILE", selfSignedCA(t))
	t.Setenv("PIPETEL_KAFKA_PASSWORD", "")
	if _, err := (testFlags{config: example}).load(); err == nil || !strings.Contains(err.Error(), "kafka.sasl.password") {
		t.Fatalf("without PIPETEL_KAFKA_PASSWORD: %v, want the error to name kafka.sasl.password", err)
	}
	t.Setenv("PIPETEL_KAFKA_PASSWORD", "secret")
	cfg, err := testFlags{config: example}.load()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Kafka.SASL.Mechanism != "SCRAM-SHA-512" || cfg.Kafka.SASL.Password != "secret" || cfg.Kafka.TLS.CAFile == "" ||
		cfg.Processor.AdvertiseHTTP != "pipetel-0.pipetel-members.telemetry.svc:9464" || cfg.Processor.ChangelogReplicationFactor != 3 {
		t.Fatalf("example decoded to %+v", cfg)
	}
}

// selfSignedCA writes a CA certificate made now to a file of t.
func selfSignedCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
