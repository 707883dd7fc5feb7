// Command pipetel is the pipeline telemetry stream processor.
//
//	pipetel run --config pipetel.yaml   the production processor
//	pipetel dev [--tasks N]             everything in one process, on an embedded broker
//	pipetel dev --rate 0 --kafka-listen 127.0.0.1:9092
//	                                    the same for your own producers, no synthetic traffic
//	pipetel bench [--tasks N]           time the processor on N synthetic tasks
//	pipetel validate --config FILE      check a configuration
//	pipetel version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/pipetel/pipetel/internal/devmode"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…"; a plain
// go build or go run reports the module version or VCS revision instead.
var version = "dev"

// versionString is what pipetel version prints after "pipetel ".
func versionString() string {
	if version != "dev" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return version
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "dev-" + rev
}

const usage = `usage: pipetel <command> [flags]

commands:
  run       run the processor (--config pipetel.yaml)
  dev       run an embedded broker, the processor and a synthetic pipeline
            (--rate 0 --kafka-listen 127.0.0.1:9092: no synthetic traffic, the broker for your own producers)
  validate  check a configuration file (--config pipetel.yaml)
  config    print: the effective configuration, secrets redacted (--config pipetel.yaml)
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
		err = devmode.Command(ctx, args, os.Stdout, os.Stderr)
	case "bench":
		err = benchCommand(ctx, args, os.Stdout, os.Stderr)
	case "query":
		err = queryCommand(ctx, args, os.Stdout, os.Stderr)
	case "validate":
		err = validateCommand(args)
	case "config":
		err = configCommand(args, os.Stdout)
	case "version":
		fmt.Println("pipetel", versionString(), runtime.Version())
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "pipetel: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		return // the flag set printed the help, as asked
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pipetel:", err)
		os.Exit(1)
	}
}
