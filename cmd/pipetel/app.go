package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pipetel/pipetel/processor"
	"github.com/pipetel/pipetel/sinks"
	"github.com/pipetel/pipetel/state"
)

// app is one pipetel instance: store, processor, publishers and HTTP.
type app struct {
	cfg       Config
	log       *slog.Logger
	reg       *prometheus.Registry
	store     *state.Store
	proc      *processor.Processor
	listener  net.Listener
	server    *http.Server
	comps     []component
	closeFunc []func() error
}

// newApp builds every component; nothing runs until run.
func newApp(cfg Config, log *slog.Logger) (*app, error) {
	a := &app{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var pubs []sinks.Publisher
	promOn := cfg.Sinks.Prometheus.Enabled == nil || *cfg.Sinks.Prometheus.Enabled
	if promOn && cfg.Sinks.Prometheus.Mode == "process" {
		p, err := sinks.NewPrometheus(a.reg, cfg.Sinks.Prometheus.PrometheusConfig)
		if err != nil {
			return nil, fmt.Errorf("cannot build prometheus publisher: %w", err)
		}
		pubs = append(pubs, p)
	}
	names := make([]string, len(pubs))
	for i, p := range pubs {
		names[i] = p.Name()
	}
	store, err := state.Open(state.Options{
		Dir: cfg.State.Dir, Retention: cfg.State.Retention, NoSync: cfg.State.NoSync,
		Publishers: names, Logger: log, Changelog: processor.NewChangelog(cfg.Processor),
		DurationBuckets: cfg.Sinks.Prometheus.DurationBuckets, LatencyBuckets: cfg.Sinks.Prometheus.LatencyBuckets,
	})
	if err != nil {
		return nil, err
	}
	a.store = store
	if promOn && cfg.Sinks.Prometheus.Mode == "state" {
		a.reg.MustRegister(sinks.NewStateMetrics(store))
	}
	a.closeFunc = append(a.closeFunc, store.Close)
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		a.close()
		return nil, fmt.Errorf("cannot listen on %q: %w", cfg.HTTP.Listen, err)
	}
	a.listener = ln
	a.closeFunc = append(a.closeFunc, func() error { ln.Close(); return nil }) // Shutdown may have closed it already
	if cfg.Processor.AdvertiseHTTP == "" {
		cfg.Processor.AdvertiseHTTP = ln.Addr().String()
	}
	proc, err := processor.New(cfg.Processor, store, a.reg, log)
	if err != nil {
		a.close()
		return nil, err
	}
	a.proc = proc
	// The API answers for the whole group: it finds the other instances
	// by the addresses they advertise in the group's member metadata.
	cluster, err := processor.NewCluster(cfg.Processor)
	if err != nil {
		a.close()
		return nil, err
	}
	a.closeFunc = append(a.closeFunc, cluster.Close)
	dead := sinks.NewKafkaDeadLetter(cfg.Processor.Brokers, cfg.Processor.DeadLetterTopic)
	a.closeFunc = append(a.closeFunc, dead.Close)

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg, EnableOpenMetrics: true}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	processor.NewAPI(store, processor.WithCluster(cluster)).Register(mux)
	a.server = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	// Start order; runComponents stops them in reverse: the processor
	// drains first, then deliveries, then HTTP.
	a.comps = append(a.comps, component{"http", a.serveHTTP})
	for _, p := range pubs {
		d, err := sinks.NewDelivery(p, store, dead, cfg.Sinks.Delivery, a.reg, log)
		if err != nil {
			a.close()
			return nil, err
		}
		a.comps = append(a.comps, component{"delivery/" + p.Name(), d.Run})
	}
	a.comps = append(a.comps, component{"processor", proc.Run})
	return a, nil
}

// Addr is the HTTP listener's address.
func (a *app) Addr() string { return a.listener.Addr().String() }

func (a *app) serveHTTP(ctx context.Context) error {
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

// run runs every component until ctx ends, then closes the store.
func (a *app) run(ctx context.Context) error {
	a.log.Info("pipetel started", "http", "http://"+a.Addr(), "brokers", a.cfg.Processor.Brokers, "group", a.cfg.Processor.GroupID)
	err := runComponents(ctx, a.log, a.comps)
	started := time.Now()
	err = errors.Join(err, a.close())
	a.log.Info("stopped", "component", "state store", "took", time.Since(started).Round(time.Millisecond))
	return err
}

func (a *app) close() error {
	var errs []error
	for i := len(a.closeFunc) - 1; i >= 0; i-- {
		errs = append(errs, a.closeFunc[i]())
	}
	a.closeFunc = nil
	return errors.Join(errs...)
}
