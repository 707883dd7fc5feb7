// Command pipetel is the pipeline telemetry stream processor.
//
//	pipetel run --config pipetel.yaml   the production processor
//	pipetel dev [--tasks N]             everything in one process, on an embedded broker
//	pipetel bench [--tasks N]           time the processor on N synthetic tasks
//	pipetel validate --config FILE      check a configuration
//	pipetel version
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `usage: pipetel <command> [flags]

commands:
  run       run the processor (--config pipetel.yaml)
  dev       run an embedded broker, the processor and a synthetic pipeline
  validate  check a configuration file (--config pipetel.yaml)
  bench     load N synthetic tasks into an embedded broker, time pipetel run on them, print one JSON line (--tasks N)
  query     ask a running instance: events, event, network, operation, retries (pipetel query --help)
  version   print the version
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "run":
		err = runCommand(ctx, args)
	case "dev":
		err = devCommand(ctx, args)
	case "bench":
		err = benchCommand(ctx, args, os.Stdout, os.Stderr)
	case "query":
		err = queryCommand(ctx, args, os.Stdout, os.Stderr)
	case "validate":
		err = validateCommand(args)
	case "version":
		fmt.Println("pipetel", version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "pipetel: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pipetel:", err)
		os.Exit(1)
	}
}
