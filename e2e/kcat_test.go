package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/internal/testbroker"
	"github.com/pipetel/pipetel/internal/testclock"
	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/state"
)

// TestKcatInterop joins records that the SDK started with ends produced by
// kcat (librdkafka): with partitioner=murmur2_random every task joins; with
// librdkafka's default (consistent_random, CRC32) exactly the tasks whose
// two partitioners disagree stay open.
func TestKcatInterop(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("kcat not found under CI=true: make test installs Debian's kcat package")
		}
		t.Skip("kcat not found: install Debian's kcat package (make test does) to test librdkafka interoperability")
	}
	const partitions = 4
	b := testbroker.Start(t)
	tt := newTestTopics(t, b, partitions)
	a := startApp(t, testConfig(b, tt, t.TempDir()))
	clock := &fakeClock{}
	p := newProducer(t, b, tt, clock)
	base := testclock.Now().Add(-time.Hour).Truncate(time.Millisecond)
	ctx := context.Background()

	run := func(prefix, partitioner string, n int) {
		t.Helper()
		var in bytes.Buffer
		for i := range n {
			id := fmt.Sprintf("%s-%04d", prefix, i)
			clock.set(base)
			must(t, p.Logger().StartEvent(ctx, "interop", id))
			end, err := schemas.Encode(schemas.Record{Schema: schemas.EventSchema, Kind: schemas.KindEnd, TaskID: id, Time: base.Add(time.Second)})
			must(t, err)
			fmt.Fprintf(&in, "%s|%s\n", id, end)
		}
		must(t, p.Flush(ctx))
		args := []string{"-P", "-b", strings.Join(b.Addrs, ","), "-t", tt.events, "-K", "|", "-X", "request.required.acks=all"}
		if partitioner != "" {
			args = append(args, "-X", "partitioner="+partitioner)
		}
		cmd := exec.Command(kcat, args...)
		cmd.Stdin = &in
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kcat %v: %v\n%s", args, err, out)
		}
	}
	// Which keys the two partitioners place alike, computed with kafka-go's
	// implementations of both.
	agree := func(prefix string, n int) (same int) {
		ps := make([]int, partitions)
		for i := range ps {
			ps[i] = i
		}
		for i := range n {
			msg := kafka.Message{Key: []byte(fmt.Sprintf("%s-%04d", prefix, i))}
			if (&kafka.Murmur2Balancer{}).Balance(msg, ps...) == (&kafka.CRC32Balancer{Consistent: true}).Balance(msg, ps...) {
				same++
			}
		}
		return same
	}

	const n = 200
	run("murmur", "murmur2_random", n)
	waitFor(t, 60*time.Second, "every kcat end joined to its SDK start", func() (bool, string) {
		f, err := a.Store().CountFinished(state.Events)
		must(t, err)
		return f == n && a.Store().OpenTasks(state.Events) == 0, fmt.Sprintf("finished %d open %d", f, a.Store().OpenTasks(state.Events))
	})

	same := agree("crc", n)
	if same == n || same == 0 {
		t.Fatalf("%d of %d keys agree: the test needs a mix", same, n)
	}
	run("crc", "", n)
	waitFor(t, 60*time.Second, "the default partitioner's records applied", func() (bool, string) {
		f, err := a.Store().CountFinished(state.Events)
		must(t, err)
		open := a.Store().OpenTasks(state.Events)
		// Each disagreeing key leaves two open halves: a start and an end
		// on different partitions.
		return f == int64(n+same) && open == int64(2*(n-same)), fmt.Sprintf("finished %d (want %d) open %d (want %d)", f, n+same, open, 2*(n-same))
	})
}
