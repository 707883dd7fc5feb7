package app

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/pipetel/pipetel/delivery"
	"github.com/pipetel/pipetel/sinks"
)

// builtin is one publisher a section under sinks turns on. Every built-in is
// in builtins, which Validate checks and New builds from: adding one is its
// section type, its field in SinksConfig and its entry there.
type builtin struct {
	// name is the publisher's Name(): its outbox key and its publisher label.
	// No publisher of the user's may take it, enabled or not: enabling the
	// built-in later would drain that publisher's outbox into it.
	name string
	// on reports whether the section turns the publisher on.
	on func(c *Config) bool
	// validate checks the section (on or not, as the section needs) and
	// names a bad field by its path.
	validate func(c *Config) error
	// outbox builds the publisher that drains an outbox of its own; nil, or
	// a nil publisher, when it has none (in the section's mode).
	outbox func(a *App) (sinks.Publisher, error)
	// fromStore wires, once the store is open, what reads the state
	// aggregates instead of an outbox: the Prometheus collector (no
	// component), the Grafana Cloud push.
	fromStore func(a *App) (*component, error)
}

// builtins in start order. Their deliveries start in this order, then the
// deliveries of the user's publishers.
var builtins = []builtin{
	{
		name: "prometheus",
		on:   func(c *Config) bool { return c.Sinks.Prometheus.Enabled == nil || *c.Sinks.Prometheus.Enabled },
		// Checked even when off: the state store keeps the histograms with
		// these buckets, and Grafana Cloud pushes them.
		validate: func(c *Config) error {
			switch c.Sinks.Prometheus.Mode {
			case "state", "process":
			default:
				return fmt.Errorf("sinks.prometheus.mode: got %q, expected state or process", c.Sinks.Prometheus.Mode)
			}
			return c.Sinks.Prometheus.Validate()
		},
		outbox: func(a *App) (sinks.Publisher, error) {
			if a.cfg.Sinks.Prometheus.Mode != "process" {
				return nil, nil
			}
			return sinks.NewPrometheus(a.reg, a.cfg.Sinks.Prometheus.PrometheusConfig,
				sinks.WithMaxLabelValues(a.cfg.State.maxLabelValues()), sinks.WithRegisterer(a.reg))
		},
		fromStore: func(a *App) (*component, error) {
			if a.cfg.Sinks.Prometheus.Mode == "state" {
				a.reg.MustRegister(delivery.NewStateMetrics(a.store))
			}
			return nil, nil
		},
	},
	{
		name: "elasticsearch",
		on:   func(c *Config) bool { return c.Sinks.Elasticsearch.Enabled },
		validate: func(c *Config) error {
			es := c.Sinks.Elasticsearch
			if !es.Enabled {
				return nil
			}
			if es.FlushBytes != 0 || es.FlushInterval != 0 {
				return fmt.Errorf("sinks.elasticsearch.flush_bytes/flush_interval: got %d/%v, expected them unset: "+
					"run sends each outbox batch of sinks.delivery.batch_size metrics as one bulk request", es.FlushBytes, es.FlushInterval)
			}
			return c.fromEnvNote("PIPETEL_ELASTICSEARCH_", es.Validate())
		},
		outbox: func(a *App) (sinks.Publisher, error) {
			es, err := sinks.NewElasticsearch(a.cfg.Sinks.Elasticsearch.ElasticsearchConfig)
			if err != nil {
				return nil, err
			}
			// Hosts, not the config: a JSON log handler would not call its
			// redacting String method.
			a.log.Info("publisher enabled", "publisher", es.Name(), "hosts", es.Config().Hosts, "index_prefix", es.Config().IndexPrefix)
			return es, nil
		},
	},
	{
		name:     "jsonl",
		on:       func(c *Config) bool { return c.Sinks.JSONL.Enabled },
		validate: func(c *Config) error { return ifOn(c.Sinks.JSONL.Enabled, c.Sinks.JSONL.Validate) },
		outbox: func(a *App) (sinks.Publisher, error) {
			j, err := sinks.NewJSONL(a.cfg.Sinks.JSONL.JSONLConfig)
			if err != nil {
				return nil, err
			}
			a.log.Info("publisher enabled", "publisher", j.Name(), "path", j.Config().Path,
				"max_bytes", j.Config().MaxBytes, "max_files", j.Config().MaxFiles)
			return j, nil
		},
	},
	{
		name: "grafanacloud",
		on:   func(c *Config) bool { return c.Sinks.GrafanaCloud.Enabled },
		validate: func(c *Config) error {
			gc := c.Sinks.GrafanaCloud
			if !gc.Enabled {
				return nil
			}
			if m := gc.Metrics; len(m.DurationBuckets) > 0 || len(m.LatencyBuckets) > 0 || m.NativeHistograms || m.HostLabel || m.MaxHosts != 0 {
				return fmt.Errorf("sinks.grafana_cloud.metrics: got %+v, expected it unset: the pushed series are the state aggregates, "+
					"whose buckets are sinks.prometheus.duration_buckets and latency_buckets", m)
			}
			return c.fromEnvNote("PIPETEL_GRAFANA_CLOUD_", gc.Validate())
		},
		fromStore: func(a *App) (*component, error) {
			c, err := newGrafanaCloud(a.cfg.Sinks.GrafanaCloud.GrafanaCloudConfig, a.store, a.reg, a.log, a.cfg.State.maxLabelValues())
			return &c, err
		},
	},
}

func ifOn(on bool, validate func() error) error {
	if !on {
		return nil
	}
	return validate()
}

// publisherName is what a user's publisher may be called: it keys the
// outbox (a NUL would let one outbox's prefix match another's), labels the
// metrics and names the delivery's component.
var publisherName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)

// checkPublishers names the first of the user's publishers whose Name() is
// not a valid name, is a built-in's, or is another's.
func checkPublishers(pubs []sinks.Publisher) error {
	reserved := make([]string, len(builtins))
	for i, b := range builtins {
		reserved[i] = b.name
	}
	seen := map[string]bool{}
	for i, p := range pubs {
		if p == nil {
			return fmt.Errorf("publishers[%d]: got nil, expected a sinks.Publisher", i)
		}
		name := p.Name()
		at := fmt.Sprintf("publishers[%d] (%T).Name()", i, p)
		switch {
		case !publisherName.MatchString(name):
			return fmt.Errorf("%s: got %q, expected 1 to 64 of a-z, 0-9, '_', '-', starting with a letter: it keys the publisher's outbox", at, name)
		case slices.Contains(reserved, name):
			return fmt.Errorf("%s: got %q, expected a name no built-in publisher has (%s): it keys the publisher's outbox", at, name, strings.Join(reserved, ", "))
		case seen[name]:
			return fmt.Errorf("%s: got %q, another publisher's name, expected each name once: it keys the publisher's outbox", at, name)
		}
		seen[name] = true
	}
	return nil
}

// buildPublishers builds the enabled built-ins that have an outbox, then
// appends the user's: every one gets an outbox and a delivery alike. A
// publisher that is an io.Closer is closed by a.close, after the
// deliveries have stopped, the user's first (the reverse of this order);
// also when New fails, so a publisher given to New is the instance's.
func (a *App) buildPublishers(extra []sinks.Publisher) ([]sinks.Publisher, error) {
	var pubs []sinks.Publisher
	addCloser := func(p sinks.Publisher) {
		if c, ok := p.(io.Closer); ok {
			a.closeFunc = append(a.closeFunc, closer{"publisher/" + p.Name(), c.Close})
		}
	}
	for _, b := range builtins {
		if b.outbox == nil || !b.on(&a.cfg) {
			continue
		}
		p, err := b.outbox(a)
		if err != nil {
			return nil, fmt.Errorf("cannot build %s publisher: %w", b.name, err)
		}
		if p == nil {
			continue
		}
		addCloser(p)
		if p.Name() != b.name {
			return nil, fmt.Errorf("cannot build %s publisher: it is called %q", b.name, p.Name())
		}
		pubs = append(pubs, p)
	}
	for _, p := range extra {
		addCloser(p)
	}
	if err := checkPublishers(extra); err != nil {
		return nil, err
	}
	return append(pubs, extra...), nil
}

// storeReaders wires, once the store is open, the built-ins that read its
// aggregates, and returns their components.
func (a *App) storeReaders() ([]component, error) {
	var comps []component
	for _, b := range builtins {
		if b.fromStore == nil || !b.on(&a.cfg) {
			continue
		}
		c, err := b.fromStore(a)
		if err != nil {
			return nil, err
		}
		if c != nil {
			comps = append(comps, *c)
		}
	}
	return comps, nil
}
