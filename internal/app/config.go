package app

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/pipetel/pipetel/delivery"
	"github.com/pipetel/pipetel/internal/kafkaconn"
	"github.com/pipetel/pipetel/processor"
	"github.com/pipetel/pipetel/sinks"
	"github.com/pipetel/pipetel/state"
)

// Config is the whole YAML tree of pipetel run.
type Config struct {
	// Kafka is how every Kafka client connects: TLS and SASL (the brokers
	// are processor.brokers).
	Kafka     kafkaconn.Config `yaml:"kafka"`
	Processor processor.Config `yaml:"processor"`
	State     StateConfig      `yaml:"state"`
	HTTP      HTTPConfig       `yaml:"http"`
	Sinks     SinksConfig      `yaml:"sinks"`
	Log       LogConfig        `yaml:"log"`

	// fromEnv names the environment variables that supplied secrets, for
	// error messages (never their values).
	fromEnv []string
}

// StateConfig places the state store.
type StateConfig struct {
	// Dir holds the Badger files. Required for run.
	Dir string `yaml:"dir"`
	// Retention keeps finished metrics queryable this long. Default 24h.
	Retention time.Duration `yaml:"retention"`
	// NoSync skips fsync on commit. Default false.
	NoSync bool `yaml:"no_sync"`
	// MaxCachedOpen is how many open tasks (and, separately, open network
	// operations) per owned partition are kept decoded in memory for the
	// join; a partition with more reads them from disk until it is back
	// under half. Default 100000 (about 30 MB a partition); -1 turns the
	// cache off.
	MaxCachedOpen int `yaml:"max_cached_open"`
	// GCInterval is how often value-log files that are mostly stale are
	// rewritten to give their disk back. Default 5m.
	GCInterval time.Duration `yaml:"gc_interval"`
	// MaxLabelValues caps, per partition, the distinct event names (and,
	// separately, operations) that get series of their own on /metrics and
	// in Grafana Cloud pushes: the metrics of later names are counted under
	// event_name (operation) "other" and in
	// pipetel_folded_label_values_total; the finished metrics keep their
	// names. Default 1000; a pointer, so that an explicit 0 is an error
	// rather than the default.
	MaxLabelValues *int `yaml:"max_label_values"`
}

// maxLabelValues is MaxLabelValues, its default when unset.
func (c StateConfig) maxLabelValues() int {
	if c.MaxLabelValues == nil {
		return state.DefaultMaxLabelValues
	}
	return *c.MaxLabelValues
}

// HTTPConfig is the listener for /metrics and the query API.
type HTTPConfig struct {
	// Listen is host:port. Default 127.0.0.1:9464: loopback unless the
	// operator says otherwise.
	Listen string `yaml:"listen"`
	// Pprof serves Go's profiles under /debug/pprof/ on the same listener.
	// Default false: profiles show internals and cost CPU while taken.
	Pprof bool `yaml:"pprof"`
	// ReadTimeout bounds reading a whole request, WriteTimeout writing its
	// answer (above a 30 s CPU profile), IdleTimeout how long a keep-alive
	// connection may wait for its next request. Defaults 30s, 2m, 2m: a
	// client that stalls cannot hold a connection for ever.
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`
	IdleTimeout  time.Duration `yaml:"idle_timeout"`
	// AuthToken, when set, is required as "Authorization: Bearer <token>"
	// by the API, /metrics and /debug/pprof (not by /healthz and /readyz,
	// the probes); instances send it to each other when they forward.
	// Better from PIPETEL_HTTP_TOKEN than in the file. Default: none.
	AuthToken string `yaml:"auth_token"`
}

// SinksConfig selects the publishers.
type SinksConfig struct {
	Prometheus    PrometheusSink          `yaml:"prometheus"`
	Elasticsearch ElasticsearchSink       `yaml:"elasticsearch"`
	GrafanaCloud  GrafanaCloudSink        `yaml:"grafana_cloud"`
	JSONL         JSONLSink               `yaml:"jsonl"`
	Delivery      delivery.DeliveryConfig `yaml:"delivery"`
}

// JSONLSink writes finished metrics as JSON lines to standard output or a
// file rotated by size, from its own outbox.
type JSONLSink struct {
	// Enabled defaults to false.
	Enabled           bool `yaml:"enabled"`
	sinks.JSONLConfig `yaml:",inline"`
}

// ElasticsearchSink indexes finished metrics into Elasticsearch (or
// OpenSearch) from its own outbox, with the delivery loop's retries and
// dead letters.
type ElasticsearchSink struct {
	// Enabled defaults to false.
	Enabled                   bool `yaml:"enabled"`
	sinks.ElasticsearchConfig `yaml:",inline"`
}

// String shows the section with its secrets redacted.
func (s ElasticsearchSink) String() string {
	return fmt.Sprintf("{Enabled:%t ElasticsearchConfig:%v}", s.Enabled, s.ElasticsearchConfig)
}

// GrafanaCloudSink pushes the state-backed counters and histograms (the
// series of delivery.NewStateMetrics) with Prometheus remote write. It has no
// outbox: every push carries the cumulative values.
type GrafanaCloudSink struct {
	// Enabled defaults to false.
	Enabled                  bool `yaml:"enabled"`
	sinks.GrafanaCloudConfig `yaml:",inline"`
}

// String shows the section with its secret redacted.
func (s GrafanaCloudSink) String() string {
	return fmt.Sprintf("{Enabled:%t GrafanaCloudConfig:%v}", s.Enabled, s.GrafanaCloudConfig)
}

// PrometheusSink is the Prometheus exposition of finished metrics on
// /metrics.
type PrometheusSink struct {
	// Enabled defaults to true.
	Enabled *bool `yaml:"enabled"`
	// Mode is "state" (default): counters and histograms are partition
	// state, exact across restarts and partition moves, with a partition
	// label; or "process": kept in process memory, fed from an outbox, which
	// offers native histograms and the host label but resets on restart.
	Mode                   string `yaml:"mode"`
	sinks.PrometheusConfig `yaml:",inline"`
}

// LogConfig sets the log output.
type LogConfig struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is text or json. Default text.
	Format string `yaml:"format"`
}

// LoadConfig reads path strictly: an unknown key is an error that names it.
func LoadConfig(path string) (Config, error) {
	var c Config
	data, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("cannot read config %q: %w", path, err)
	}
	if data, err = expandEnv(data); err != nil {
		return c, fmt.Errorf("cannot read config %q: %w", path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, fmt.Errorf("cannot decode config %q: %w", path, yamlPaths(err))
	}
	return c, nil
}

// ApplyEnv fills settings that may come from the environment, so that
// secrets need not be written in the file. A secret set in the environment
// overrides the file's.
func (c *Config) ApplyEnv() {
	if v := os.Getenv("PIPETEL_BROKERS"); v != "" && len(c.Processor.Brokers) == 0 {
		c.Processor.Brokers = strings.Split(v, ",")
	}
	for _, s := range c.secrets() {
		if v := os.Getenv(s.env); v != "" && (s.envOverrides || *s.dst == "") {
			*s.dst = v
			c.fromEnv = append(c.fromEnv, s.env)
		}
	}
}

// secret is a setting that must not be shown, and the environment variable
// that can supply it.
type secret struct {
	env          string
	dst          *string
	envOverrides bool // the environment wins over the file; else it fills an empty setting
}

// secrets lists every secret of the configuration, for ApplyEnv and
// Redacted.
func (c *Config) secrets() []secret {
	return []secret{
		{kafkaconn.PasswordEnv, &c.Kafka.SASL.Password, false},
		{"PIPETEL_ELASTICSEARCH_PASSWORD", &c.Sinks.Elasticsearch.Password, true},
		{"PIPETEL_ELASTICSEARCH_API_KEY", &c.Sinks.Elasticsearch.APIKey, true},
		{"PIPETEL_GRAFANA_CLOUD_API_KEY", &c.Sinks.GrafanaCloud.APIKey, true},
		{"PIPETEL_HTTP_TOKEN", &c.HTTP.AuthToken, true},
	}
}

// fromEnvNote adds to a publisher's validation error (which names the field
// by its path) which of the section's secrets came from the environment,
// never their values.
func (c *Config) fromEnvNote(envPrefix string, err error) error {
	if err == nil {
		return nil
	}
	var envs []string
	for _, e := range c.fromEnv {
		if strings.HasPrefix(e, envPrefix) {
			envs = append(envs, e)
		}
	}
	if len(envs) == 0 {
		return err
	}
	return fmt.Errorf("%w (set from the environment: %s)", err, strings.Join(envs, ", "))
}

func (c *Config) WithDefaults() {
	c.Processor = c.Processor.WithDefaults()
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = "127.0.0.1:9464"
	}
	for _, d := range []struct {
		p   *time.Duration
		def time.Duration
	}{{&c.HTTP.ReadTimeout, 30 * time.Second}, {&c.HTTP.WriteTimeout, 2 * time.Minute}, {&c.HTTP.IdleTimeout, 2 * time.Minute}} {
		if *d.p == 0 {
			*d.p = d.def
		}
	}
	if c.State.Retention == 0 {
		c.State.Retention = state.DefaultRetention
	}
	if c.State.MaxLabelValues == nil {
		n := state.DefaultMaxLabelValues
		c.State.MaxLabelValues = &n
	}
	if c.Sinks.Prometheus.Mode == "" {
		c.Sinks.Prometheus.Mode = "state"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
}

// Validate names the first bad field, its value and what is allowed.
func (c *Config) Validate() error {
	if err := c.Kafka.Validate("kafka"); err != nil {
		return err
	}
	if err := c.Processor.Validate(); err != nil {
		return err
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"http.read_timeout", c.HTTP.ReadTimeout}, {"http.write_timeout", c.HTTP.WriteTimeout}, {"http.idle_timeout", c.HTTP.IdleTimeout}} {
		if d.v < 0 {
			return fmt.Errorf("%s: got %v, expected a duration > 0 (0: the default)", d.name, d.v)
		}
	}
	if c.State.GCInterval < 0 {
		return fmt.Errorf("state.gc_interval: got %v, expected a duration >= 0 (0: the default, 5m)", c.State.GCInterval)
	}
	if c.State.MaxCachedOpen < -1 {
		return fmt.Errorf("state.max_cached_open: got %d, expected -1 (off) or 0 and up (0: the default, 100000)", c.State.MaxCachedOpen)
	}
	if n := c.State.maxLabelValues(); n < 1 {
		return fmt.Errorf("state.max_label_values: got %d, expected an integer >= 1 (unset: the default, %d)", n, state.DefaultMaxLabelValues)
	}
	if c.State.Dir == "" {
		return fmt.Errorf("state.dir: got \"\", expected a directory for the state store")
	}
	if c.State.Retention <= 0 {
		return fmt.Errorf("state.retention: got %v, expected a duration > 0", c.State.Retention)
	}
	for _, b := range builtins {
		if err := b.validate(c); err != nil {
			return err
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level: got %q, expected one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return fmt.Errorf("log.format: got %q, expected text or json", c.Log.Format)
	}
	return nil
}

// NewLogger is the logger of the log section, on stderr.
func NewLogger(c LogConfig) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// sections names the configuration's Go types by their place in the file,
// for decode errors: "field hots not found in sinks.elasticsearch", not in
// a Go type the operator never sees.
var sections = map[string]string{
	"app.Config": "the top level", "app.StateConfig": "state", "app.HTTPConfig": "http", "app.LogConfig": "log",
	"app.SinksConfig": "sinks", "app.ElasticsearchSink": "sinks.elasticsearch", "app.GrafanaCloudSink": "sinks.grafana_cloud",
	"app.JSONLSink": "sinks.jsonl", "app.PrometheusSink": "sinks.prometheus", "delivery.DeliveryConfig": "sinks.delivery", "processor.Config": "processor",
	"kafkaconn.Config": "kafka", "kafkaconn.TLSConfig": "kafka.tls", "kafkaconn.SASLConfig": "kafka.sasl",
	"sinks.PrometheusConfig": "sinks.grafana_cloud.metrics",
}

var inType = regexp.MustCompile(`not found in type ([A-Za-z0-9_.]+)`)

// yamlPaths rewrites yaml.v3's "field x not found in type pkg.T" with the
// section's path.
type pathError struct {
	msg string
	err error
}

func (e *pathError) Error() string { return e.msg }
func (e *pathError) Unwrap() error { return e.err }

func yamlPaths(err error) error {
	msg := inType.ReplaceAllStringFunc(err.Error(), func(m string) string {
		if p, ok := sections[inType.FindStringSubmatch(m)[1]]; ok {
			return "not found in " + p
		}
		return m
	})
	return &pathError{msg: msg, err: err}
}

// Redacted is the configuration with every secret that is set replaced by
// "<redacted>", for pipetel config print.
func (c Config) Redacted() Config {
	for _, s := range c.secrets() {
		if *s.dst != "" {
			*s.dst = "<redacted>"
		}
	}
	return c
}
