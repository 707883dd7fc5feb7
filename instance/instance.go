// Package instance runs a pipetel instance inside your own binary: the same
// processor, state store, query API and /metrics as pipetel run, with
// publishers of your own beside the built-in ones. A publisher is a
// sinks.Publisher (the Python library's MetricsPublisher, with
// publish_event_metrics and publish_network_metrics as PublishEvents and
// PublishNetwork, batch-oriented); given to New with WithPublisher, it gets
// what the built-ins get: its own outbox in the state store, filled in the
// transaction that finishes each metric, a delivery loop that retries with
// backoff what it returns as retryable, dead-letters what it rejects for good
// (sinks.ErrPermanent, *sinks.RejectedError) and pauses the processor's
// fetches while its outbox is deeper than processor.max_outbox_depth.
//
// The package is thin over internal/app: the configuration is pipetel run's
// (LoadConfig reads the same file), and everything else is as that command
// runs it.
package instance

import (
	"context"
	"errors"
	"io"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipetel/pipetel/internal/app"
	"github.com/pipetel/pipetel/sinks"
)

// Config is the whole configuration tree of pipetel run (README
// "Running it", deploy/pipetel.yaml), set in code or read by LoadConfig.
// Unset fields take their defaults in New.
type Config = app.Config

// LoadConfig reads a configuration file as pipetel run does: strictly (an
// unknown key is an error naming it), with ${VAR} from the environment and
// the secrets that may come from it (PIPETEL_HTTP_TOKEN, …) applied. New
// fills in the defaults and validates.
func LoadConfig(path string) (Config, error) {
	cfg, err := app.LoadConfig(path)
	if err != nil {
		return cfg, err
	}
	cfg.ApplyEnv()
	return cfg, nil
}

// Instance is one pipetel instance: built by New, run once by Run.
type Instance struct {
	app *app.App
}

// New fills in cfg's defaults, validates it (an error names the field, its
// value and what is allowed), and builds every component; nothing runs
// until Run. The publishers given with WithPublisher are the instance's
// from now on: one that is an io.Closer is closed when Run returns, or when
// New fails.
func New(cfg Config, opts ...Option) (*Instance, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, errors.Join(err, closeAll(o.publishers))
	}
	log := o.log
	if log == nil {
		log = app.NewLogger(cfg.Log)
	}
	a, err := app.New(cfg, log, o.publishers...)
	if err != nil {
		return nil, err
	}
	return &Instance{app: a}, nil
}

// closeAll closes the publishers that are io.Closers, the last given first.
func closeAll(pubs []sinks.Publisher) error {
	var errs []error
	for i := len(pubs) - 1; i >= 0; i-- {
		if c, ok := pubs[i].(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// Run runs the instance until ctx ends or a component fails, then stops
// everything in reverse order (the processor drains first, then the
// deliveries, keeping what is undelivered in the outboxes for the next
// start; then HTTP, the store and the publishers' Close), logging each
// step's time. It returns nil after a clean stop.
func (i *Instance) Run(ctx context.Context) error { return i.app.Run(ctx) }

// Addr is the address of the HTTP listener (the query API, /metrics,
// /healthz, /readyz): the one configured, or the port chosen for
// http.listen "host:0".
func (i *Instance) Addr() string { return i.app.Addr() }

// Ready is closed once the instance has joined its consumer group and
// received its first assignment.
func (i *Instance) Ready() <-chan struct{} { return i.app.Processor().Ready() }

// Registerer is the registry /metrics serves: a publisher of yours may
// register its own metrics there.
func (i *Instance) Registerer() prometheus.Registerer { return i.app.Registry() }
