package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/pipetel/pipetel/internal/bench"
)

func benchCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o bench.Options
	fs.IntVar(&o.Tasks, "tasks", 1_000_000, "synthetic tasks to load (each a start, 0-3 retries and an end)")
	fs.IntVar(&o.Partitions, "partitions", 8, "partitions of the events topic")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the synthetic tasks")
	fs.StringVar(&o.Dir, "dir", "", "keep the broker data, state and processor log here (default: a temporary directory, removed)")
	configFile := fs.String("config", "", "YAML file merged into the processor's configuration (not brokers, group, state dir or listen address)")
	fs.DurationVar(&o.Timeout, "timeout", 0, "give up processing after this long (default 15m)")
	fs.StringVar(&o.Binary, "binary", "", "the pipetel executable to time (default: this one), to compare builds")
	fs.StringVar(&o.Elasticsearch, "elasticsearch", "", "URL of an Elasticsearch or OpenSearch node: also index the finished metrics there and compare with plain _bulk requests of the same documents")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *configFile != "" {
		data, err := os.ReadFile(*configFile)
		if err != nil {
			return fmt.Errorf("cannot read --config %q: %w", *configFile, err)
		}
		o.Config = string(data)
	}
	if o.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("cannot find the pipetel executable: %w", err)
		}
		o.Binary = exe
	}
	o.Progress = stderr
	res, err := bench.Run(ctx, o)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(res)
}
