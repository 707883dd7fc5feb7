// Package app wires one pipetel instance: the configuration tree (strict
// YAML, ${VAR} from the environment, validation with field paths), the
// components built from it (state store, processor, query API, deliveries,
// pushers, HTTP), and their lifecycle: Run starts them, and stops them in
// reverse order when the context ends or one fails. cmd/pipetel parses
// flags and calls it; the e2e tests run it in-process.
package app

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pipetel/pipetel/delivery"
	"github.com/pipetel/pipetel/internal/kafkaconn"
	"github.com/pipetel/pipetel/processor"
	"github.com/pipetel/pipetel/query"
	"github.com/pipetel/pipetel/sinks"
	"github.com/pipetel/pipetel/state"
)

// App is one pipetel instance: store, processor, publishers and HTTP.
type App struct {
	cfg       Config
	log       *slog.Logger
	reg       *prometheus.Registry
	store     *state.Store
	proc      *processor.Processor
	listener  net.Listener
	server    *http.Server
	comps     []component
	closeFunc []closer
	conn      *kafkaconn.Conn
}

// closer is one step of closing an instance, named in the log.
type closer struct {
	name  string
	close func() error
}

// New builds every component; nothing runs until Run. The publishers of
// the configuration's sinks come first, then extra, the caller's own: each
// gets an outbox (keyed by its Name, which must not be a built-in's) and a
// delivery alike. New owns extra from now on: an extra that is an io.Closer
// is closed when Run returns, or when New fails.
func New(cfg Config, log *slog.Logger, extra ...sinks.Publisher) (*App, error) {
	a := &App{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	pubs, err := a.buildPublishers(extra)
	if err != nil {
		return nil, errors.Join(err, a.close())
	}
	conn, err := kafkaconn.New(cfg.Kafka, "kafka")
	if err != nil {
		return nil, errors.Join(err, a.close())
	}
	cfg.Processor.Conn = conn
	a.cfg.Processor.Conn, a.conn = conn, conn
	// Every publisher with an outbox is named here: the store queues each
	// finished metric once per name.
	names := make([]string, len(pubs))
	for i, p := range pubs {
		names[i] = p.Name()
	}
	changelog := processor.NewChangelog(cfg.Processor)
	store, err := state.Open(state.Options{
		Dir: cfg.State.Dir, Retention: cfg.State.Retention, NoSync: cfg.State.NoSync, MaxCachedOpen: cfg.State.MaxCachedOpen,
		Publishers: names, Logger: log, Changelog: changelog.ForStore(),
		DurationBuckets: cfg.Sinks.Prometheus.DurationBuckets, LatencyBuckets: cfg.Sinks.Prometheus.LatencyBuckets,
		MaxLabelValues: cfg.State.maxLabelValues(),
	})
	if err != nil {
		return nil, err
	}
	a.store = store
	a.closeFunc = append(a.closeFunc, closer{"state store", store.Close})
	pushers, err := a.storeReaders()
	if err != nil {
		a.close()
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		a.close()
		return nil, fmt.Errorf("cannot listen on %q: %w", cfg.HTTP.Listen, err)
	}
	a.listener = ln
	a.closeFunc = append(a.closeFunc, closer{"http listener", func() error { ln.Close(); return nil }}) // Shutdown may have closed it already
	if cfg.Processor.AdvertiseHTTP == "" {
		cfg.Processor.AdvertiseHTTP = ln.Addr().String()
	}
	proc, err := processor.New(cfg.Processor, store, changelog, a.reg, log)
	if err != nil {
		a.close()
		return nil, err
	}
	a.proc = proc
	// The API answers for the whole group: it finds the other instances
	// by the addresses they advertise in the group's member metadata.
	pc := cfg.Processor.WithDefaults()
	cluster, err := query.NewCluster(query.ClusterConfig{Brokers: pc.Brokers, GroupID: pc.GroupID,
		EventsTopic: pc.EventsTopic, NetworkTopic: pc.NetworkTopic, AdvertiseHTTP: pc.AdvertiseHTTP, Transport: conn.Transport(),
		Token: cfg.HTTP.AuthToken})
	if err != nil {
		a.close()
		return nil, err
	}
	a.closeFunc = append(a.closeFunc, closer{"query cluster", cluster.Close})
	dead := delivery.NewKafkaDeadLetter(cfg.Processor.Brokers, cfg.Processor.DeadLetterTopic, conn.Transport())
	a.closeFunc = append(a.closeFunc, closer{"dead-letter writer", dead.Close})

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg, EnableOpenMetrics: true}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	// Ready once the instance is a group member with no partition restoring:
	// what a load balancer or a Kubernetes readiness probe asks.
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := proc.Readiness(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	query.NewAPI(store, query.WithCluster(cluster), query.WithAPILogger(log), query.WithClock(cfg.Processor.Now)).Register(mux)
	if cfg.HTTP.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	a.server = &http.Server{Handler: requireToken(cfg.HTTP.AuthToken, mux), ReadHeaderTimeout: min(10*time.Second, cfg.HTTP.ReadTimeout),
		ReadTimeout: cfg.HTTP.ReadTimeout, WriteTimeout: cfg.HTTP.WriteTimeout, IdleTimeout: cfg.HTTP.IdleTimeout,
		MaxHeaderBytes: 64 << 10}

	// Start order; runComponents stops them in reverse: the processor
	// drains first, then deliveries, then HTTP.
	a.comps = append(a.comps, component{"http", a.serveHTTP})
	a.comps = append(a.comps, component{"state-gc", func(ctx context.Context) error { return store.RunGC(ctx, cfg.State.GCInterval) }})
	for _, p := range pubs {
		d, err := delivery.NewDelivery(p, store, dead, cfg.Sinks.Delivery, a.reg, log)
		if err != nil {
			a.close()
			return nil, err
		}
		a.comps = append(a.comps, component{"delivery/" + p.Name(), d.Run})
	}
	// After the processor has stopped, a pusher's final push carries every
	// applied record.
	a.comps = append(a.comps, pushers...)
	a.comps = append(a.comps, component{"processor", proc.Run})
	return a, nil
}

// Addr is the HTTP listener's address.
func (a *App) Addr() string { return a.listener.Addr().String() }

func (a *App) serveHTTP(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- a.server.Serve(a.listener) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := a.server.Shutdown(sctx)
		<-errc
		return err
	}
}

// Run runs every component until ctx ends, then closes the store.
func (a *App) Run(ctx context.Context) error {
	a.log.Info("pipetel started", "http", "http://"+a.Addr(), "brokers", a.cfg.Processor.Brokers, "group", a.cfg.Processor.GroupID,
		"kafka", a.cfg.Kafka.String())
	// A wrong password or an untrusted certificate is a configuration
	// error: say so now instead of retrying it in every client. Brokers that
	// are not up yet are retried as before.
	if err := a.conn.Check(ctx, a.cfg.Processor.Brokers); errors.Is(err, kafkaconn.ErrAuthentication) || errors.Is(err, kafkaconn.ErrUntrusted) {
		return errors.Join(err, a.close())
	} else if err != nil {
		a.log.Warn("cannot reach Kafka yet; the clients keep trying", "err", err)
	}
	return errors.Join(runComponents(ctx, a.log, a.comps), a.close())
}

// close runs the closing steps in reverse order, logging each one's time
// like runComponents: the dead-letter writer, the cluster view and the
// listener, the store, then the publishers that are io.Closers.
func (a *App) close() error {
	var errs []error
	for i := len(a.closeFunc) - 1; i >= 0; i-- {
		c := a.closeFunc[i]
		started := time.Now()
		if err := c.close(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
		}
		a.log.Info("stopped", "component", c.name, "took", time.Since(started).Round(time.Millisecond))
	}
	a.closeFunc = nil
	return errors.Join(errs...)
}

// newGrafanaCloud builds the Grafana Cloud pusher over the state-backed
// aggregates: a private registry, so that it pushes the finished metrics'
// series and not pipetel's own health metrics, and no outbox. Those series
// are capped per partition by the state; maxLabels caps the pusher's own
// aggregation alike, should it ever run without the gatherer.
func newGrafanaCloud(cfg sinks.GrafanaCloudConfig, store *state.Store, reg prometheus.Registerer, log *slog.Logger, maxLabels int) (component, error) {
	series := prometheus.NewRegistry()
	series.MustRegister(delivery.NewStateMetrics(store))
	gc, err := sinks.NewGrafanaCloud(cfg, sinks.WithGatherer(series), sinks.WithRegisterer(reg), sinks.WithLogger(log),
		sinks.WithMaxLabelValues(maxLabels))
	if err != nil {
		return component{}, fmt.Errorf("cannot build grafana cloud publisher: %w", err)
	}
	log.Info("publisher enabled", "publisher", gc.Name(), "endpoint", redactURL(gc.Config().Endpoint),
		"instance_label", gc.Config().InstanceLabel, "push_interval", gc.Config().PushInterval)
	return component{"push/" + gc.Name(), func(ctx context.Context) error {
		if err := gc.Run(ctx); err != nil {
			// Not a failure of the shutdown: the receiver keeps the last
			// successful push, and the counts live on in the state.
			log.Warn("final push failed", "publisher", gc.Name(), "err", err)
		}
		return nil
	}}, nil
}

// redactURL drops credentials and the query (some gateways put tokens there)
// from a URL for logs.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	u.User, u.RawQuery = nil, ""
	return u.String()
}

// Store is the instance's state store.
func (a *App) Store() *state.Store { return a.store }

// Processor is the instance's stream processor.
func (a *App) Processor() *processor.Processor { return a.proc }

// Registry is the registry /metrics serves.
func (a *App) Registry() *prometheus.Registry { return a.reg }

// Components names the components in start order.
func (a *App) Components() []string {
	names := make([]string, len(a.comps))
	for i, c := range a.comps {
		names[i] = c.name
	}
	return names
}

// requireToken answers 401 to a request without "Authorization: Bearer
// token", except the probes; an empty token requires nothing.
func requireToken(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" ||
			subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) == 1 {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="pipetel"`)
		http.Error(w, "missing or wrong bearer token (http.auth_token)", http.StatusUnauthorized)
	})
}
