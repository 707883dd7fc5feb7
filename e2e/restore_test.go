package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/internal/testbroker"
	"github.com/pipetel/pipetel/schemas"
)

// produceStarts writes the start records of tasks [0, n) straight to the
// events topic with a kafka-go Writer in large batches: the SDK's per-call
// path is not what this test measures.
func produceStarts(t *testing.T, b *testbroker.Broker, topic string, n int, taskID func(int) string, at time.Time) {
	t.Helper()
	w := &kafka.Writer{
		Addr: kafka.TCP(b.Addrs...), Topic: topic, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchSize: 10000, BatchBytes: 8 << 20, BatchTimeout: 5 * time.Millisecond,
		Compression: kafka.Lz4, Transport: &kafka.Transport{},
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const chunk = 10000
	msgs := make([]kafka.Message, 0, chunk)
	for i := 0; i < n; i += chunk {
		msgs = msgs[:0]
		for j := i; j < min(i+chunk, n); j++ {
			pid := int64(j)
			v, err := schemas.Encode(schemas.Record{Schema: schemas.EventSchema, Kind: schemas.KindStart, TaskID: taskID(j),
				Time: at.Add(time.Duration(j) * time.Microsecond), EventName: "load", PipelineID: "million", ProcessID: &pid})
			must(t, err)
			msgs = append(msgs, kafka.Message{Key: []byte(taskID(j)), Value: v})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatalf("cannot produce start records %d..%d: %v", i, i+len(msgs), err)
		}
	}
}

// gauge reads one unlabelled-or-summed series of the instance, -1 when it
// does not answer.
func (in *instance) gauge(name string) float64 {
	fams, err := in.metrics()
	if err != nil {
		return -1
	}
	return sumMetric(fams, name, nil)
}

var restoredLine = regexp.MustCompile(`msg="restored partition state from changelog" changelog=(\S+) partition=(\d+) records=(\d+) stale_owner_records_skipped=\d+ took=(\S+)`)

// TestRestoreMillionOpenTasks has one instance apply a million starts
// without ends to one partition, then a fresh instance, on an empty state
// directory, take the partition over and rebuild it from the changelog. It
// reports how long that took and how much memory it needed.
func TestRestoreMillionOpenTasks(t *testing.T) {
	skipUnlessHeavy(t)
	const n = 1_000_000
	b := testbroker.Start(t)
	tt := newTestTopics(t, b, 1)
	bin := buildPipetel(t)
	taskID := func(i int) string { return fmt.Sprintf("million-%07d", i) }

	started := time.Now()
	produceStarts(t, b, tt.events, n, taskID, time.Now().UTC())
	produced := time.Since(started)
	t.Logf("produced %d start records in %v (%.0f records/s)", n, produced.Round(time.Millisecond), n/produced.Seconds())

	cfg := func(dir string) instanceConfig {
		return instanceConfig{brokers: b.Addrs, topics: tt, stateDir: dir, listen: freeAddr(t),
			maxOpenTasks: 2_000_000, taskTimeout: 240 * time.Hour}
	}
	a := newInstance(t, bin, "pipetel-a", cfg(filepath.Join(t.TempDir(), "a")))
	started = time.Now()
	a.start()
	a.waitUp(90 * time.Second)
	waitFor(t, 10*time.Minute, "the first instance to hold every task open", func() (bool, string) {
		if !a.running() {
			t.Fatalf("%s exited; log:\n%s", a.name, a.logTail(30))
		}
		open := a.gauge("pipetel_open_tasks")
		return open == n, fmt.Sprintf("open tasks %v", open)
	})
	applied := time.Since(started)
	rssA, err := a.peakRSS()
	must(t, err)
	drain := a.terminate(2 * time.Minute)

	bInst := newInstance(t, bin, "pipetel-b", cfg(filepath.Join(t.TempDir(), "b")))
	started = time.Now()
	bInst.start()
	waitFor(t, 10*time.Minute, "the second instance to restore every open task", func() (bool, string) {
		if !bInst.running() {
			t.Fatalf("%s exited; log:\n%s", bInst.name, bInst.logTail(30))
		}
		open, restoring := bInst.gauge("pipetel_open_tasks"), bInst.gauge("pipetel_restoring_partitions")
		return open == n && restoring == 0, fmt.Sprintf("open tasks %v, restoring partitions %v", open, restoring)
	})
	takeover := time.Since(started)
	rssB, err := bInst.peakRSS()
	must(t, err)
	t.Logf("%s's log:\n%s", bInst.name, strings.Join(bInst.logLines("pipetel started", "joined consumer group", "restor", "partition assigned"), "\n"))
	var restore string
	for _, line := range bInst.logLines("restored partition state from changelog") {
		if m := restoredLine.FindStringSubmatch(line); m != nil && m[1] == tt.group+"-"+tt.events+"-changelog" {
			restore = fmt.Sprintf("%s changelog records in %s", m[3], m[4])
		}
	}
	if restore == "" {
		t.Errorf("no restore of the events partition in %s's log:\n%s", bInst.name, bInst.logTail(30))
	}
	// Exact, and stays so: the restored tasks are open, not expired.
	if open := bInst.gauge("pipetel_open_tasks"); open != n {
		t.Errorf("pipetel_open_tasks on the restored instance: %v, want %d", open, n)
	}
	for _, line := range []string{
		fmt.Sprintf("TestRestoreMillionOpenTasks (%s broker): %d open tasks applied by instance A in %v (%.0f records/s, peak RSS %d MiB), A drained in %v",
			b.Kind, n, applied.Round(100*time.Millisecond), n/applied.Seconds(), rssA>>20, drain.Round(100*time.Millisecond)),
		fmt.Sprintf("TestRestoreMillionOpenTasks (%s broker): fresh instance B restored them: %s, start to %d open tasks %v, peak RSS %d MiB",
			b.Kind, restore, n, takeover.Round(100*time.Millisecond), rssB>>20),
	} {
		report(t, line)
	}
}
