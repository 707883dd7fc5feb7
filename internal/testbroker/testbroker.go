// Package testbroker chooses the Kafka broker the integration tests run
// against, in one place: an address in PIPETEL_TEST_KAFKA wins (make test
// starts a real Apache Kafka broker and sets it); otherwise, where a Docker
// engine is reachable, testcontainers-go starts a Kafka container (one per
// test binary); otherwise the embedded kfake broker, started per test. The
// same tests run on any of them, and each package prints once which one it
// used.
//
// Under CI=true an unset PIPETEL_TEST_KAFKA fails the test: CI must prove the
// product against the real broker, never fall back silently.
package testbroker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// EnvKafka names the variable holding a real broker's bootstrap addresses.
const EnvKafka = "PIPETEL_TEST_KAFKA"

// Broker is the broker one test uses.
type Broker struct {
	// Addrs are the bootstrap addresses.
	Addrs []string
	// Kind is "kafka" for a broker from PIPETEL_TEST_KAFKA, "container" for
	// one testcontainers-go started, "embedded" for kfake.
	Kind string
	// Cluster is the embedded cluster, nil for a real broker.
	Cluster *kfake.Cluster
}

var announce sync.Once

// Start returns the broker for t. An embedded broker is closed when t ends.
func Start(t testing.TB) *Broker {
	t.Helper()
	var b *Broker
	if addr := os.Getenv(EnvKafka); addr != "" {
		b = &Broker{Addrs: strings.Split(addr, ","), Kind: "kafka"}
	} else if dockerReachable() {
		addr, err := kafkaContainer()
		if err != nil {
			t.Fatalf("a Docker engine is reachable but the Kafka container did not start: %v", err)
		}
		b = &Broker{Addrs: []string{addr}, Kind: "container"}
	} else {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set under CI=true: the integration tests must run against the real Kafka broker (make test starts it)", EnvKafka)
		}
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond), kfake.AllowAutoTopicCreation())
		if err != nil {
			t.Fatalf("cannot start embedded broker: %v", err)
		}
		t.Cleanup(c.Close)
		b = &Broker{Addrs: c.ListenAddrs(), Kind: "embedded", Cluster: c}
	}
	announce.Do(func() {
		what := "embedded kfake broker (set " + EnvKafka + " or run make test for the real one)"
		switch b.Kind {
		case "kafka":
			what = "real Kafka broker at " + strings.Join(b.Addrs, ",")
		case "container":
			what = "Kafka container " + KafkaImage + " (testcontainers-go) at " + strings.Join(b.Addrs, ",")
		}
		Report(fmt.Sprintf("%s: Kafka tests use the %s", packageOf(t), what))
	})
	return b
}

func packageOf(t testing.TB) string {
	wd, err := os.Getwd()
	if err != nil {
		return t.Name()
	}
	for dir := wd; dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if rel, err := filepath.Rel(dir, wd); err == nil {
				return "./" + rel
			}
		}
	}
	return wd
}

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// Name returns a topic or group name unique to this test run, so tests
// sharing a real broker never see each other's records.
func Name(t testing.TB, suffix string) string {
	base := unsafeChars.ReplaceAllString(t.Name(), "_")
	if len(base) > 80 {
		base = base[:80]
	}
	return fmt.Sprintf("t.%s.%06x.%s", base, rand.Uint32()&0xffffff, suffix)
}

// CreateTopics creates topics with the given partitions and waits until the
// broker reports a leader for each partition.
func (b *Broker) CreateTopics(t testing.TB, partitions int, topics ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(b.Addrs...), Transport: &kafka.Transport{}}
	req := &kafka.CreateTopicsRequest{}
	for _, tp := range topics {
		req.Topics = append(req.Topics, kafka.TopicConfig{Topic: tp, NumPartitions: partitions, ReplicationFactor: 1})
	}
	resp, err := client.CreateTopics(ctx, req)
	if err != nil {
		t.Fatalf("cannot create topics %v: %v", topics, err)
	}
	for tp, err := range resp.Errors {
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			t.Fatalf("cannot create topic %q: %v", tp, err)
		}
	}
	for {
		meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
		ready := err == nil && len(meta.Topics) == len(topics)
		if ready {
			for _, tp := range meta.Topics {
				ready = ready && tp.Error == nil && len(tp.Partitions) == partitions
				for _, p := range tp.Partitions {
					ready = ready && p.Error == nil && p.Leader.ID >= 0
				}
			}
		}
		if ready {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("topics %v have no leaders after 30s (last error: %v)", topics, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// EnvReport names a file that collects, one line each, which servers the
// test packages used; make test prints it at the end, because go test hides
// the output of packages that pass.
const EnvReport = "PIPETEL_TEST_REPORT"

// Report prints line to stderr and appends it to the report file, if any.
func Report(line string) {
	fmt.Fprintln(os.Stderr, line)
	if path := os.Getenv(EnvReport); path != "" {
		if f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintln(f, line)
			f.Close()
		}
	}
}
