package app

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestPublisherConfigErrors(t *testing.T) {
	f := func(sinks string, env map[string]string, want string) {
		t.Helper()
		t.Run("", func(t *testing.T) { // a subtest: t.Setenv lasts until its end
			t.Helper()
			for k, v := range env {
				t.Setenv(k, v)
			}
			body := "processor: {brokers: [\"127.0.0.1:9092\"]}\nstate: {dir: /tmp/x}\nsinks:\n" + sinks
			path := writeConfig(t, body)
			_, err := testFlags{config: path}.load()
			if want = strings.ReplaceAll(want, "CONFIG", path); err == nil || err.Error() != want {
				t.Fatalf("sinks %q: error %v, want %q", sinks, err, want)
			}
		})
	}
	f("  elasticsearch: {enabled: true}\n", nil,
		`sinks.elasticsearch.hosts: got none, expected at least one URL such as "http://127.0.0.1:9200"`)
	f("  elasticsearch: {enabled: true, hosts: [\"127.0.0.1:9200\"]}\n", nil,
		`sinks.elasticsearch.hosts[0]: got "127.0.0.1:9200", expected an http:// or https:// URL with a host`)
	f("  elasticsearch: {enabled: true, hosts: [\"http://u:secret@es:9200\"]}\n", nil,
		`sinks.elasticsearch.hosts[0]: got "http://u:xxxxx@es:9200", expected no credentials in the URL: use username/password or api_key`)
	f("  elasticsearch: {enabled: true, hosts: [\"http://es:9200\"], index_prefix: Metrics}\n", nil,
		`sinks.elasticsearch.index_prefix: got "Metrics", expected up to 200 of a-z, 0-9, '.', '_', '-', starting with a letter or digit`)
	f("  elasticsearch: {enabled: true, hosts: [\"http://es:9200\"]}\n", map[string]string{"PIPETEL_ELASTICSEARCH_PASSWORD": "s3cret"},
		`sinks.elasticsearch.username/password: got one of them, expected both set or both empty (set from the environment: PIPETEL_ELASTICSEARCH_PASSWORD)`)
	f("  elasticsearch: {enabled: true, hosts: [\"http://es:9200\"], username: u, password: p}\n", map[string]string{"PIPETEL_ELASTICSEARCH_API_KEY": "k"},
		`sinks.elasticsearch.api_key/username: got both, expected one way to authenticate (set from the environment: PIPETEL_ELASTICSEARCH_API_KEY)`)
	f("  elasticsearch: {enabled: true, hosts: [\"http://es:9200\"], timeout: -1s}\n", nil,
		`sinks.elasticsearch.timeout: got -1s, expected 0 (default 30s) or more`)
	f("  elasticsearch: {enabled: true, hosts: [\"http://es:9200\"], flush_interval: 1s}\n", nil,
		`sinks.elasticsearch.flush_bytes/flush_interval: got 0/1s, expected them unset: run sends each outbox batch of sinks.delivery.batch_size metrics as one bulk request`)
	f("  elasticsearch: {enabled: true, host: [\"http://es:9200\"]}\n", nil,
		"cannot decode config \"CONFIG\": yaml: unmarshal errors:\n  line 4: field host not found in sinks.elasticsearch")
	f("  grafana_cloud: {enabled: true, endpoint: \"prometheus.grafana.net/api/prom/push\"}\n", nil,
		`sinks.grafana_cloud.endpoint: got "prometheus.grafana.net/api/prom/push", expected an http:// or https:// remote-write URL such as https://<stack>/api/prom/push`)
	f("  grafana_cloud: {enabled: true, endpoint: \"https://p.grafana.net/api/prom/push\", instance_id: \"123\"}\n", nil,
		`sinks.grafana_cloud.instance_id/api_key: got one of them, expected both set or both empty`)
	f("  grafana_cloud: {enabled: true, endpoint: \"https://p.grafana.net/api/prom/push\", api_key: k}\n", map[string]string{"PIPETEL_GRAFANA_CLOUD_API_KEY": "k2"},
		`sinks.grafana_cloud.instance_id/api_key: got one of them, expected both set or both empty (set from the environment: PIPETEL_GRAFANA_CLOUD_API_KEY)`)
	f("  grafana_cloud: {enabled: true, endpoint: \"https://p.grafana.net/api/prom/push\", push_interval: -1s}\n", nil,
		`sinks.grafana_cloud.push_interval: got -1s, expected 0 (default 15s) or more`)
	f("  grafana_cloud: {enabled: true, endpoint: \"https://p.grafana.net/api/prom/push\", metrics: {duration_buckets: [1, 2]}}\n", nil,
		"sinks.grafana_cloud.metrics: got {DurationBuckets:[1 2] LatencyBuckets:[] NativeHistograms:false HostLabel:false MaxHosts:0}, "+
			"expected it unset: the pushed series are the state aggregates, whose buckets are sinks.prometheus.duration_buckets and latency_buckets")
	f("  jsonl: {enabled: true}\n", nil, `sinks.jsonl.path: got "", expected a file to append to, or "-" for standard output`)
	f("  jsonl: {enabled: true, path: \"-\", max_bytes: -1}\n", nil, "sinks.jsonl.max_bytes: got -1, expected 0 (default 104857600) or more")
	f("  jsonl: {enabled: true, path: \"-\", max_file: 3}\n", nil,
		"cannot decode config \"CONFIG\": yaml: unmarshal errors:\n  line 4: field max_file not found in sinks.jsonl")
	// A disabled section is not checked.
	body := "processor: {brokers: [a:1]}\nstate: {dir: /tmp/x}\nsinks: {elasticsearch: {hosts: [nonsense]}, grafana_cloud: {endpoint: x}, jsonl: {max_files: -1}}\n"
	if _, err := (testFlags{config: writeConfig(t, body)}).load(); err != nil {
		t.Fatalf("disabled sections: %v", err)
	}
}

func TestPublisherSecretsFromEnvironment(t *testing.T) {
	path := writeConfig(t, `processor: {brokers: ["127.0.0.1:9092"]}
state: {dir: /tmp/x}
sinks:
  elasticsearch: {enabled: true, hosts: ["https://es:9200"], username: elastic, password: from-file}
  grafana_cloud: {enabled: true, endpoint: "https://p.grafana.net/api/prom/push", instance_id: "123456"}
`)
	t.Setenv("PIPETEL_ELASTICSEARCH_PASSWORD", "es-env-secret")
	t.Setenv("PIPETEL_GRAFANA_CLOUD_API_KEY", "glc-env-secret")
	cfg, err := testFlags{config: path}.load()
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Sinks.Elasticsearch.Password; got != "es-env-secret" {
		t.Errorf("elasticsearch password %q, want the environment's", got)
	}
	if got := cfg.Sinks.GrafanaCloud.APIKey; got != "glc-env-secret" {
		t.Errorf("grafana cloud api_key %q, want the environment's", got)
	}
	for _, format := range []string{"%v", "%+v", "%s"} {
		for _, v := range []any{cfg, cfg.Sinks, cfg.Sinks.Elasticsearch, cfg.Sinks.GrafanaCloud} {
			out := fmt.Sprintf(format, v)
			if strings.Contains(out, "secret") || strings.Contains(out, "from-file") || !strings.Contains(out, "REDACTED") {
				t.Errorf("%s of %T shows a secret or no REDACTED: %s", format, v, out)
			}
		}
	}
	if out := fmt.Sprintf("%+v", cfg.Sinks.Elasticsearch); !strings.Contains(out, "Enabled:true") || !strings.Contains(out, "https://es:9200") {
		t.Errorf("elasticsearch section prints as %s", out)
	}
}

// TestPublishersWired builds (without running) an instance with every
// built-in publisher and two of the user's, and checks what it wires: an
// outbox and a delivery for Elasticsearch, JSON lines and the user's (not
// for Prometheus in state mode nor Grafana Cloud), the components, their
// metrics, and the closing steps in reverse order, each logged.
func TestPublishersWired(t *testing.T) {
	var cfg Config
	cfg.Processor.Brokers = []string{"127.0.0.1:1"}
	cfg.State.Dir = t.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.Sinks.Elasticsearch.Enabled = true
	cfg.Sinks.Elasticsearch.Hosts = []string{"http://127.0.0.1:1"}
	cfg.Sinks.GrafanaCloud.Enabled = true
	cfg.Sinks.GrafanaCloud.Endpoint = "http://127.0.0.1:1/api/v1/write"
	cfg.Sinks.JSONL.Enabled = true
	cfg.Sinks.JSONL.Path = filepath.Join(t.TempDir(), "metrics.jsonl")
	cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	var closed []string
	webhook, audit := &testPublisher{name: "webhook", closed: &closed}, &testPublisher{name: "audit", closed: &closed}
	a, err := New(cfg, slog.New(slog.NewTextHandler(&logs, nil)), webhook, audit)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	var names []string
	for _, c := range a.comps {
		names = append(names, c.name)
	}
	if want := []string{"http", "state-gc", "delivery/elasticsearch", "delivery/jsonl", "delivery/webhook", "delivery/audit",
		"push/grafanacloud", "processor"}; !slices.Equal(names, want) {
		t.Errorf("components %v, want %v", names, want)
	}
	defer func() {
		logs.Reset()
		if err := a.close(); err != nil {
			t.Fatal(err)
		}
		if want := []string{"audit", "webhook"}; !slices.Equal(closed, want) {
			t.Errorf("publishers closed in order %v, want %v", closed, want)
		}
		var steps []string
		for _, m := range regexp.MustCompile(`msg=stopped component="?([^" ]+(?: [a-z-]+)*)"? took=\S+`).FindAllStringSubmatch(logs.String(), -1) {
			steps = append(steps, m[1])
		}
		if want := []string{"dead-letter writer", "query cluster", "http listener", "state store", "publisher/audit", "publisher/webhook",
			"publisher/jsonl"}; !slices.Equal(steps, want) {
			t.Errorf("closing steps logged %q, want %q; log:\n%s", steps, want, logs.String())
		}
	}()
	mfs, err := a.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	publishers := map[string][]string{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "publisher" {
					publishers[mf.GetName()] = append(publishers[mf.GetName()], l.GetValue())
				}
			}
		}
	}
	for name, want := range map[string]string{
		"pipetel_outbox_depth":          "[audit elasticsearch jsonl webhook]",
		"pipetel_publish_retried_total": "[audit elasticsearch jsonl webhook]",
		"pipetel_push_failed_total":     "[grafanacloud]",
		"pipetel_push_sent_total":       "[grafanacloud]",
	} {
		if got := fmt.Sprint(publishers[name]); got != want {
			t.Errorf("%s publishers %s, want %s", name, got, want)
		}
	}
	// The pushed series are not on /metrics twice: only the state collector
	// of the Prometheus sink is.
	var stateErrors int
	for _, mf := range mfs {
		if mf.GetName() == "pipetel_state_metrics_errors_total" {
			stateErrors = len(mf.GetMetric())
		}
	}
	if stateErrors != 1 {
		t.Errorf("pipetel_state_metrics_errors_total has %d series on /metrics, want 1", stateErrors)
	}
}
