package devmode

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/pipetel/pipetel/schemas"
)

// options are pipetel dev's flags, checked.
type options struct {
	tasks      int
	rate       int
	workers    int
	listen     string
	partitions int
	seed       uint64
	verbose    bool
	// kafkaListen is where the embedded broker listens and what it
	// advertises; empty: a free port on 127.0.0.1, as before the flag.
	kafkaListen string
	// kafkaPublic: kafkaListen is not a loopback address, so other hosts
	// can reach a broker that asks no credentials.
	kafkaPublic bool
}

// synthetic reports whether the synthetic pipeline runs: --rate 0 without
// --tasks leaves the topics to the user's own producers.
func (o options) synthetic() bool { return o.tasks > 0 || o.rate > 0 }

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.tasks, "tasks", 0, "emit exactly this many tasks, wait until all are finished, print a JSON summary and exit (0: run until interrupted)")
	fs.IntVar(&o.rate, "rate", 200, "synthetic tasks started per second when --tasks is 0 (0: none, only what you produce)")
	fs.IntVar(&o.workers, "workers", 512, "concurrent synthetic tasks")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:9464", "HTTP listen address for /metrics and the API")
	fs.StringVar(&o.kafkaListen, "kafka-listen", "", "host:port the embedded Kafka broker listens on and advertises, for your own producers (default: a free port on 127.0.0.1); "+
		"a loopback address or localhost, or an IP address of this host to expose the broker, which asks no credentials, to other hosts")
	fs.IntVar(&o.partitions, "partitions", 8, "partitions of each topic")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the synthetic pipeline's choices")
	fs.BoolVar(&o.verbose, "v", false, "log at info level (default: warnings only)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("dev: got argument %q, expected flags only", fs.Arg(0))
	}
	if o.tasks < 0 {
		return o, fmt.Errorf("--tasks: got %d, expected 0 or more", o.tasks)
	}
	if o.rate < 0 {
		return o, fmt.Errorf("--rate: got %d, expected 0 (no synthetic traffic) or more tasks per second", o.rate)
	}
	if o.workers < 1 {
		return o, fmt.Errorf("--workers: got %d, expected 1 or more", o.workers)
	}
	if o.partitions < 1 {
		return o, fmt.Errorf("--partitions: got %d, expected 1 or more", o.partitions)
	}
	if o.kafkaListen != "" {
		addr, public, err := checkKafkaListen(o.kafkaListen)
		if err != nil {
			return o, err
		}
		o.kafkaListen, o.kafkaPublic = addr, public
	}
	return o, nil
}

// checkKafkaListen returns the address the broker listens on for the
// --kafka-listen value, and whether it is beyond loopback. The broker
// advertises the address it listens on, so the host must be one address a
// client can dial: a wildcard (every interface, and no address to
// advertise) or a name (which may resolve to several, or to a public one)
// is refused. localhost is 127.0.0.1. Any other IP address is taken as the
// user's explicit wish to expose the broker.
func checkKafkaListen(value string) (addr string, public bool, err error) {
	host, port, err := net.SplitHostPort(value)
	if err != nil {
		return "", false, fmt.Errorf("--kafka-listen: got %q, expected host:port, for example 127.0.0.1:9092", value)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", false, fmt.Errorf("--kafka-listen: got %q, expected a port 0..65535 after the host", value)
	}
	if host == "localhost" {
		return net.JoinHostPort("127.0.0.1", port), false, nil
	}
	ip, err := netip.ParseAddr(host)
	if host == "" || err == nil && ip.IsUnspecified() {
		return "", false, fmt.Errorf("--kafka-listen: got %q, expected a loopback address such as 127.0.0.1:9092, or one IP address of this host: "+
			"a wildcard listens on every interface and leaves the broker no address to advertise", value)
	}
	if err != nil || ip.Zone() != "" {
		return "", false, fmt.Errorf("--kafka-listen: got %q, expected an IP address or localhost: the broker advertises the address it listens on, "+
			"which must be the one address clients dial", value)
	}
	return net.JoinHostPort(ip.String(), port), !ip.IsLoopback(), nil
}

// startBroker starts the embedded broker with the input topics seeded. kfake
// listens on 127.0.0.1 at a port of its choosing and advertises its
// listener's address in metadata; with an address given, the listener is
// on that address, so a client outside the process bootstraps from it and is
// sent back to it.
func startBroker(dir string, o options) (*kfake.Cluster, error) {
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.SeedTopics(int32(o.partitions), schemas.DefaultEventsTopic, schemas.DefaultNetworkTopic),
		kfake.DataDir(filepath.Join(dir, "broker")),
		kfake.GroupMinSessionTimeout(100 * time.Millisecond),
		kfake.AllowAutoTopicCreation(),
	}
	if o.kafkaListen != "" {
		opts = append(opts, kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, o.kafkaListen)
		}))
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		if o.kafkaListen != "" {
			return nil, fmt.Errorf("cannot start the embedded broker on --kafka-listen %q: %w", o.kafkaListen, err)
		}
		return nil, fmt.Errorf("cannot start the embedded broker: %w", err)
	}
	return cluster, nil
}
