package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pipetel/pipetel/internal/testbroker"
)

// TestFaultKillDuringExpiry kills instances with SIGKILL while expiry and
// retention transactions run all the time (a quarter of the tasks never
// end and time out a second later; finished metrics are swept three
// seconds after their end), once restarting an instance on an empty state
// directory so that it rebuilds everything from the changelogs. Afterwards
// the counters, which are state, count every task exactly once: nothing
// expired or swept before a kill is restored and counted again.
func TestFaultKillDuringExpiry(t *testing.T) {
	skipUnlessHeavy(t)
	const n, perSecond = 3000, 200
	b := testbroker.Start(t)
	tt := newTestTopics(t, b, 4)
	bin := buildPipetel(t)
	var inst []*instance
	dirs := []string{filepath.Join(t.TempDir(), "state"), filepath.Join(t.TempDir(), "state")}
	for i := range 2 {
		inst = append(inst, newInstance(t, bin, fmt.Sprintf("pipetel-%d", i), instanceConfig{
			brokers: b.Addrs, topics: tt, stateDir: dirs[i], listen: freeAddr(t),
			taskTimeout: time.Second, retention: 3 * time.Second, retentionInterval: 100 * time.Millisecond,
			idleTimeAdvance: time.Second,
		}))
	}
	f := &fleet{t: t, b: b, tt: tt, partitions: 4, inst: inst}
	for _, in := range inst {
		in.start()
	}
	for _, in := range inst {
		in.waitUp(90 * time.Second)
	}
	f.waitBalanced(90 * time.Second)

	w := &kafka.Writer{Addr: kafka.TCP(b.Addrs...), Topic: tt.events, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 2 * time.Millisecond, Transport: &kafka.Transport{}}
	t.Cleanup(func() { w.Close() })
	ended := 0
	var sent int
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	base := time.Now().UTC()
	emit := func(to int) {
		t.Helper()
		var msgs []kafka.Message
		for ; sent < to; sent++ {
			id := fmt.Sprintf("exp-%05d", sent)
			start := base.Add(time.Duration(sent) * time.Second / perSecond)
			rec := func(kind string, at time.Time) kafka.Message {
				v := fmt.Sprintf(`{"schema":"pipetel.event/v1","kind":%q,"task_id":%q,"event_name":"expiring","time":%q}`, kind, id, at.Format(time.RFC3339Nano))
				if kind == "end" {
					v = fmt.Sprintf(`{"schema":"pipetel.event/v1","kind":"end","task_id":%q,"time":%q}`, id, at.Format(time.RFC3339Nano))
				}
				return kafka.Message{Key: []byte(id), Value: []byte(v)}
			}
			msgs = append(msgs, rec("start", start))
			if sent%4 != 0 {
				msgs = append(msgs, rec("end", start.Add(20*time.Millisecond)))
				ended++
			}
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatalf("cannot produce: %v", err)
		}
	}
	// Paced with the wall clock, so that record time and wall time agree
	// and the sweeps run while records arrive.
	kills := map[int]func(){
		n / 4: func() { inst[0].kill(); inst[0].start() },
		n / 2: func() {
			// Back on an empty state directory: everything it is given is
			// rebuilt from the changelogs.
			inst[1].kill()
			must(t, os.RemoveAll(dirs[1]))
			inst[1].start()
		},
		3 * n / 4: func() { inst[0].kill(); inst[0].start() },
	}
	for step := 0; step < n; step += 50 {
		if d := time.Until(base.Add(time.Duration(step) * time.Second / perSecond)); d > 0 {
			pause(ctx, d)
		}
		emit(step + 50)
		if k, ok := kills[step]; ok {
			k()
			t.Logf("kill -9 at task %d", step)
		}
	}
	for _, in := range inst {
		in.waitUp(90 * time.Second)
	}
	timedOut := n - ended
	var last string
	waitFor(t, 2*time.Minute, "every task counted once", func() (bool, string) {
		var completed, expired float64
		for _, in := range f.live() {
			fams, err := in.metrics()
			if err != nil {
				return false, err.Error()
			}
			completed += sumMetric(fams, "events_total", map[string]string{"status": "completed"})
			expired += sumMetric(fams, "events_total", map[string]string{"status": "timed_out"})
		}
		last = fmt.Sprintf("completed %v of %d, timed out %v of %d", completed, ended, expired, timedOut)
		if completed > float64(ended) || expired > float64(timedOut) {
			t.Fatalf("counted twice: %s", last)
		}
		return completed == float64(ended) && expired == float64(timedOut), last
	})
	var restored []string
	sweeps := 0
	for _, in := range inst {
		restored = append(restored, fmt.Sprintf("%s %d restores", in.name, len(in.logLines("restored partition state from changelog"))))
		sweeps += len(in.logLines("expired finished metrics"))
	}
	if sweeps == 0 {
		t.Fatal("no retention sweep removed anything: the test did not test what it says")
	}
	if len(inst[1].logLines("restored partition state from changelog")) == 0 {
		t.Fatal("the instance on an empty state directory restored nothing")
	}
	restored = append(restored, fmt.Sprintf("%d sweeps", sweeps))
	report(t, fmt.Sprintf("TestFaultKillDuringExpiry (%s broker): %s after 3 kill -9 during constant expiry and retention sweeps (%s)",
		b.Kind, last, strings.Join(restored, ", ")))
}
