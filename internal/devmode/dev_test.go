package devmode

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/client"
	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/telemetry"
)

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args        []string
		kafkaListen string
		public      bool
		synthetic   bool
		err         string
	}{
		{args: nil, synthetic: true},
		{args: []string{"--rate", "0"}, synthetic: false},
		{args: []string{"--rate", "0", "--tasks", "10"}, synthetic: true},
		{args: []string{"--rate", "-1"}, err: `--rate: got -1, expected 0 (no synthetic traffic) or more tasks per second`},
		{args: []string{"--tasks", "-2"}, err: `--tasks: got -2, expected 0 or more`},
		{args: []string{"--workers", "0"}, err: `--workers: got 0, expected 1 or more`},
		{args: []string{"--partitions", "0"}, err: `--partitions: got 0, expected 1 or more`},
		{args: []string{"--rate", "0", "extra"}, err: `dev: got argument "extra", expected flags only`},
		{args: []string{"--kafka-listen", "127.0.0.1:9092"}, kafkaListen: "127.0.0.1:9092", synthetic: true},
		{args: []string{"--kafka-listen", "127.0.0.2:0"}, kafkaListen: "127.0.0.2:0", synthetic: true},
		{args: []string{"--kafka-listen", "localhost:9092"}, kafkaListen: "127.0.0.1:9092", synthetic: true},
		{args: []string{"--kafka-listen", "[::1]:9092"}, kafkaListen: "[::1]:9092", synthetic: true},
		{args: []string{"--kafka-listen", "192.168.10.5:9092"}, kafkaListen: "192.168.10.5:9092", public: true, synthetic: true},
		{args: []string{"--kafka-listen", "0.0.0.0:9092"}, err: `--kafka-listen: got "0.0.0.0:9092", expected a loopback address such as 127.0.0.1:9092, or one IP address of this host: ` +
			`a wildcard listens on every interface and leaves the broker no address to advertise`},
		{args: []string{"--kafka-listen", ":9092"}, err: `--kafka-listen: got ":9092", expected a loopback address such as 127.0.0.1:9092, or one IP address of this host: ` +
			`a wildcard listens on every interface and leaves the broker no address to advertise`},
		{args: []string{"--kafka-listen", "[::]:9092"}, err: `--kafka-listen: got "[::]:9092", expected a loopback address such as 127.0.0.1:9092, or one IP address of this host: ` +
			`a wildcard listens on every interface and leaves the broker no address to advertise`},
		{args: []string{"--kafka-listen", "kafka.example.com:9092"}, err: `--kafka-listen: got "kafka.example.com:9092", expected an IP address or localhost: ` +
			`the broker advertises the address it listens on, which must be the one address clients dial`},
		{args: []string{"--kafka-listen", "127.0.0.1"}, err: `--kafka-listen: got "127.0.0.1", expected host:port, for example 127.0.0.1:9092`},
		{args: []string{"--kafka-listen", "127.0.0.1:65536"}, err: `--kafka-listen: got "127.0.0.1:65536", expected a port 0..65535 after the host`},
		{args: []string{"--kafka-listen", "127.0.0.1:kafka"}, err: `--kafka-listen: got "127.0.0.1:kafka", expected a port 0..65535 after the host`},
	} {
		o, err := parseFlags(tc.args, io.Discard)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q: got error %v, expected %s", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if o.kafkaListen != tc.kafkaListen || o.kafkaPublic != tc.public || o.synthetic() != tc.synthetic {
			t.Errorf("%q: got kafka-listen %q public %v synthetic %v, expected %q %v %v",
				tc.args, o.kafkaListen, o.kafkaPublic, o.synthetic(), tc.kafkaListen, tc.public, tc.synthetic)
		}
	}
}

// syncBuffer is the command's stderr, written by its goroutines and read by
// the test while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitFor polls cond until it holds or the deadline passes; cond says what
// it saw, for the failure message.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v; last: %s", what, timeout, seen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestOwnProducerOnKafkaListen: pipetel dev --rate 0 --kafka-listen ADDR
// prints the broker and the topics, advertises ADDR in metadata, emits
// nothing of its own, and joins what a producer outside it sends to ADDR.
func TestOwnProducerOnKafkaListen(t *testing.T) {
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- Command(ctx, []string{"--rate", "0", "--kafka-listen", addr, "--listen", "127.0.0.1:0", "--partitions", "2"}, io.Discard, &stderr)
	}()
	apiLine := regexp.MustCompile(`metrics and API on (http://\S+) `)
	var api string
	waitFor(t, "the API address on stderr", 30*time.Second, func() (bool, string) {
		select {
		case err := <-done:
			t.Fatalf("pipetel dev ended before it started: %v\n%s", err, stderr.String())
		default:
		}
		m := apiLine.FindStringSubmatch(stderr.String())
		if m != nil {
			api = m[1]
		}
		return m != nil, stderr.String()
	})
	wantBroker := "pipetel dev: Kafka broker " + addr + ", topics pipetel.events (events) and pipetel.network (network operations), 2 partitions each; invalid records go to pipetel.deadletter\n"
	wantNone := "pipetel dev: no synthetic traffic (--rate 0): produce your own records to " + addr + "\n"
	for _, want := range []string{wantBroker, wantNone} {
		if !bytes.Contains([]byte(stderr.String()), []byte(want)) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}

	meta, err := (&kafka.Client{Addr: kafka.TCP(addr)}).Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		t.Fatalf("cannot read metadata from %s: %v", addr, err)
	}
	var advertised []string
	for _, b := range meta.Brokers {
		advertised = append(advertised, net.JoinHostPort(b.Host, strconv.Itoa(b.Port)))
	}
	if !slices.Equal(advertised, []string{addr}) {
		t.Errorf("brokers advertised: %v, expected [%s]", advertised, addr)
	}

	p, err := telemetry.NewProducer([]string{addr})
	if err != nil {
		t.Fatal(err)
	}
	log, netw := p.Logger(), p.Network()
	emit := []error{
		log.StartEvent(ctx, "extract", "own-ok"),
		log.RecordRetry(ctx, "own-ok"),
		netw.StartOperation(ctx, "own-ok", "db.internal", 5432, telemetry.WithOpID("q1")),
		netw.EndOperation(ctx, "own-ok", 10, 20, errors.New("reset"), telemetry.WithOpID("q1")),
		log.RecordRetry(ctx, "own-ok"),
		log.EndEvent(ctx, "own-ok", nil),
		log.StartEvent(ctx, "load", "own-failed"),
		log.EndEvent(ctx, "own-failed", errors.New("upstream returned 503")),
		log.StartEvent(ctx, "load", "own-open"),
	}
	if err := errors.Join(append(emit, p.Flush(ctx), p.Close(ctx))...); err != nil {
		t.Fatal(err)
	}

	c := client.New(api)
	var events []schemas.EventMetric
	waitFor(t, "the three tasks and the operation", 30*time.Second, func() (bool, string) {
		events = events[:0]
		open := 0
		for m, err := range c.Events(ctx, client.Filter{}) {
			if err != nil {
				return false, err.Error()
			}
			events = append(events, m)
			if m.Status == schemas.StatusPending {
				open++
			}
		}
		failedOps, err := c.FailedNetworkOps(ctx)
		return err == nil && len(events) == 3 && open == 1 && len(failedOps) == 1, strconv.Itoa(len(events)) + " events"
	})
	got := map[string]string{}
	for _, m := range events {
		got[m.TaskID] = string(m.Status)
	}
	want := map[string]string{"own-ok": "completed", "own-failed": "failed", "own-open": "pending"}
	if len(got) != len(want) || got["own-ok"] != want["own-ok"] || got["own-failed"] != want["own-failed"] || got["own-open"] != want["own-open"] {
		t.Errorf("events %v, expected exactly %v (--rate 0 emits nothing of its own)", got, want)
	}
	stats, err := c.RetryStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats.TotalRetries != 2 || stats.EventsWithRetries != 1 || stats.MaxRetries != 2 {
		t.Errorf("retry stats %+v, expected 2 retries on 1 event", stats)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("pipetel dev ended with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("pipetel dev did not stop 30s after its context ended")
	}
}

// TestKafkaListenInUse: an address another process holds is an error naming
// the flag and the address, before anything else starts.
func TestKafkaListenInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	err = Command(context.Background(), []string{"--rate", "0", "--kafka-listen", addr, "--listen", "127.0.0.1:0"}, io.Discard, io.Discard)
	want := `cannot start the embedded broker on --kafka-listen "` + addr + `": listen tcp ` + addr + `: bind: address already in use`
	if err == nil || err.Error() != want || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("got %v, expected %s", err, want)
	}
}
