package main

import (
	"io"

	"context"
	"flag"
	"fmt"
	"github.com/pipetel/pipetel/internal/app"
	"go.yaml.in/yaml/v3"
	"strings"
)

// runFlags are the flags of run and validate; a flag overrides the file.
type runFlags struct {
	config  string
	brokers string
	listen  string
	dir     string
	group   string
	// advertise overrides processor.advertise_http: in Kubernetes,
	// --advertise-http=$(POD_NAME).pipetel-members:9464 from the pod's name.
	advertise string
}

func parseRunFlags(name string, args []string) (runFlags, error) {
	var f runFlags
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&f.config, "config", "pipetel.yaml", "configuration file")
	fs.StringVar(&f.brokers, "brokers", "", "comma-separated Kafka bootstrap addresses (overrides processor.brokers)")
	fs.StringVar(&f.listen, "listen", "", "HTTP listen address (overrides http.listen)")
	fs.StringVar(&f.dir, "state-dir", "", "state directory (overrides state.dir)")
	fs.StringVar(&f.group, "group", "", "consumer group (overrides processor.group_id)")
	fs.StringVar(&f.advertise, "advertise-http", "", "host:port other instances reach this one's API at (overrides processor.advertise_http)")
	return f, fs.Parse(args)
}

func (f runFlags) load() (app.Config, error) {
	cfg, err := app.LoadConfig(f.config)
	if err != nil {
		return cfg, err
	}
	cfg.ApplyEnv()
	if f.brokers != "" {
		cfg.Processor.Brokers = strings.Split(f.brokers, ",")
	}
	if f.listen != "" {
		cfg.HTTP.Listen = f.listen
	}
	if f.dir != "" {
		cfg.State.Dir = f.dir
	}
	if f.group != "" {
		cfg.Processor.GroupID = f.group
	}
	if f.advertise != "" {
		cfg.Processor.AdvertiseHTTP = f.advertise
	}
	cfg.WithDefaults()
	return cfg, cfg.Validate()
}

func runCommand(ctx context.Context, args []string) error {
	f, err := parseRunFlags("run", args)
	if err != nil {
		return err
	}
	cfg, err := f.load()
	if err != nil {
		return err
	}
	a, err := app.New(cfg, app.NewLogger(cfg.Log))
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

func validateCommand(args []string) error {
	f, err := parseRunFlags("validate", args)
	if err != nil {
		return err
	}
	if _, err := f.load(); err != nil {
		return err
	}
	fmt.Printf("%s: valid\n", f.config)
	return nil
}

// configCommand is pipetel config print: the effective configuration (the
// file, the environment, the flags and the defaults), secrets redacted.
func configCommand(args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "print" {
		return fmt.Errorf("config: got %q, expected: pipetel config print [--config FILE] [run's flags]", strings.Join(args, " "))
	}
	f, err := parseRunFlags("config print", args[1:])
	if err != nil {
		return err
	}
	cfg, err := f.load()
	if err != nil {
		return err
	}
	out, err := yaml.Marshal(cfg.Redacted())
	if err != nil {
		return fmt.Errorf("cannot encode the configuration: %w", err)
	}
	_, err = stdout.Write(out)
	return err
}
