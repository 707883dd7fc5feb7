package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/telemetry"
)

func newProducer(tb testing.TB, c *kfake.Cluster, opts ...telemetry.Option) *telemetry.Producer {
	tb.Helper()
	p, err := telemetry.NewProducer(c.ListenAddrs(), opts...)
	if err != nil {
		tb.Fatalf("NewProducer: %v", err)
	}
	tb.Cleanup(func() { p.Close(context.Background()) })
	return p
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// TestExact sends 1000 tasks' event and network records and reads them all
// back: exact counts per topic, every value decodes to exactly the Record
// sent, every key is on the partition the Java client would choose, and each
// task's records are in the order they were sent.
func TestExact(t *testing.T) {
	const (
		tasks      = 1000
		partitions = 8
	)
	c := newCluster(t, partitions)
	sent := time.Now().Truncate(time.Millisecond)
	clock, at := stepClock()
	p := newProducer(t, c, telemetry.WithClock(clock))
	log, net := p.Logger(), p.Network()
	ctx := context.Background()

	// want[topic][time] is the record sent at that (distinct) time.
	want := map[string]map[time.Time]schemas.Record{
		schemas.DefaultEventsTopic:  {},
		schemas.DefaultNetworkTopic: {},
	}
	calls := 0
	send := func(topic string, r schemas.Record, call func() error) {
		t.Helper()
		r.Time = at(calls)
		calls++
		if err := call(); err != nil {
			t.Fatalf("sending %+v: %v", r, err)
		}
		want[topic][r.Time] = r
	}
	events, network := schemas.DefaultEventsTopic, schemas.DefaultNetworkTopic
	for i := range tasks {
		id := fmt.Sprintf("task-%04d", i)
		start := schemas.Record{Schema: schemas.EventSchema, Kind: schemas.KindStart, TaskID: id, EventName: "ingest", PipelineID: fmt.Sprintf("pipe-%d", i%4)}
		opts := []telemetry.EventOption{telemetry.WithPipelineID(start.PipelineID)}
		if i%2 == 0 {
			pid := int64(i)
			start.ProcessID = &pid
			opts = append(opts, telemetry.WithProcessID(pid))
		}
		send(events, start, func() error { return log.StartEvent(ctx, "ingest", id, opts...) })
		if i%3 == 0 {
			send(events, schemas.Record{Schema: schemas.EventSchema, Kind: schemas.KindRetry, TaskID: id},
				func() error { return log.RecordRetry(ctx, id) })
		}
		if i%2 == 0 {
			send(network, schemas.Record{Schema: schemas.NetworkSchema, Kind: schemas.KindStart, TaskID: id, OpID: "op-1", Host: "db.internal", Port: 5432, Operation: "query"},
				func() error {
					return net.StartOperation(ctx, id, "db.internal", 5432, telemetry.WithOperation("query"), telemetry.WithOpID("op-1"))
				})
			send(network, schemas.Record{Schema: schemas.NetworkSchema, Kind: schemas.KindEnd, TaskID: id, OpID: "op-1", BytesSent: int64(100 + i), BytesReceived: int64(2000 + i)},
				func() error {
					return net.EndOperation(ctx, id, int64(100+i), int64(2000+i), nil, telemetry.WithOpID("op-1"))
				})
		} else {
			send(network, schemas.Record{Schema: schemas.NetworkSchema, Kind: schemas.KindStart, TaskID: id, Host: "api.example", Port: 443, Operation: schemas.DefaultOperation},
				func() error { return net.StartOperation(ctx, id, "api.example", 443) })
			send(network, schemas.Record{Schema: schemas.NetworkSchema, Kind: schemas.KindEnd, TaskID: id, Error: "read: connection reset"},
				func() error { return net.EndOperation(ctx, id, 0, 0, errors.New("read: connection reset")) })
		}
		end := schemas.Record{Schema: schemas.EventSchema, Kind: schemas.KindEnd, TaskID: id}
		var endErr error
		if i%5 == 0 {
			endErr = errors.New("disk full")
			end.Error = "disk full"
		}
		send(events, end, func() error { return log.EndEvent(ctx, id, endErr) })
	}
	must(t, p.Flush(ctx))

	wantCounts := map[string]int{events: tasks + (tasks+2)/3 + tasks, network: 2 * tasks}
	for topic, n := range wantCounts {
		if len(want[topic]) != n {
			t.Fatalf("test bug: %d distinct records for %s, want %d", len(want[topic]), topic, n)
		}
		msgs := readAll(t, c.ListenAddrs(), topic, partitions)
		if len(msgs) != n {
			t.Fatalf("%s: read %d records, want %d", topic, len(msgs), n)
		}
		lastTime := map[string]time.Time{} // per key, in offset order
		for _, m := range msgs {
			got, err := schemas.Decode(m.Value)
			if err != nil {
				t.Fatalf("%s/%d@%d: %v", topic, m.Partition, m.Offset, err)
			}
			w, ok := want[topic][got.Time]
			if !ok {
				t.Fatalf("%s/%d@%d: unexpected or duplicate record %+v", topic, m.Partition, m.Offset, got)
			}
			delete(want[topic], got.Time)
			if !reflect.DeepEqual(got, w) {
				t.Errorf("%s/%d@%d: got %+v, want %+v", topic, m.Partition, m.Offset, got, w)
			}
			if string(m.Key) != w.TaskID {
				t.Errorf("%s/%d@%d: key %q, want %q", topic, m.Partition, m.Offset, m.Key, w.TaskID)
			}
			if wp := javaPartition(m.Key, partitions); m.Partition != wp {
				t.Errorf("%s: key %q on partition %d, Java client's partition %d", topic, m.Key, m.Partition, wp)
			}
			if m.Time.Before(sent) || m.Time.After(time.Now()) {
				t.Errorf("%s/%d@%d: timestamp %s, want the wall clock of the send (after %s)", topic, m.Partition, m.Offset, m.Time, sent)
			}
			if prev := lastTime[w.TaskID]; !prev.Before(w.Time) {
				t.Errorf("%s: task %q: record of %s after one of %s", topic, w.TaskID, w.Time, prev)
			}
			lastTime[w.TaskID] = w.Time
		}
		if len(want[topic]) != 0 {
			t.Errorf("%s: %d records sent but not read", topic, len(want[topic]))
		}
	}
}

// TestDeliveryErrorUnknownTopic: records for a topic that does not exist, with
// auto-creation off, reach the error handler one by one and Flush as one
// error naming the topic.
func TestDeliveryErrorUnknownTopic(t *testing.T) {
	const n = 10
	c := newCluster(t, 2)
	var (
		mu     sync.Mutex
		failed []string
	)
	p := newProducer(t, c,
		telemetry.WithEventsTopic("pipetel.missing"),
		telemetry.WithErrorHandler(func(err error, rec schemas.Record) {
			mu.Lock()
			defer mu.Unlock()
			var derr *telemetry.DeliveryError
			if !errors.As(err, &derr) || derr.Topic != "pipetel.missing" {
				t.Errorf("handler got %v, want a *DeliveryError for pipetel.missing", err)
			}
			failed = append(failed, rec.TaskID)
		}))
	ctx := context.Background()
	var want []string
	for i := range n {
		id := fmt.Sprintf("task-%d", i)
		want = append(want, id)
		// The call succeeds: delivery errors are reported, not returned.
		must(t, p.Logger().StartEvent(ctx, "ingest", id))
	}
	// Network records go to an existing topic and are not affected.
	must(t, p.Network().StartOperation(ctx, "task-0", "db.internal", 5432))

	err := p.Flush(ctx)
	const wantErr = `cannot deliver 10 records to topic "pipetel.missing": [3] Unknown Topic Or Partition: the request is for a topic or partition that does not exist on this broker`
	if err == nil || err.Error() != wantErr {
		t.Fatalf("Flush = %v, want %s", err, wantErr)
	}
	var derr *telemetry.DeliveryError
	if !errors.As(err, &derr) || derr.Topic != "pipetel.missing" || derr.Records != n {
		t.Errorf("Flush error %#v, want a *DeliveryError for pipetel.missing with Records %d", derr, n)
	}
	if !errors.Is(err, kafka.UnknownTopicOrPartition) {
		t.Errorf("errors.Is(%v, kafka.UnknownTopicOrPartition) = false", err)
	}
	mu.Lock()
	if !slices.Equal(failed, want) {
		t.Errorf("handler called for %q, want %q", failed, want)
	}
	mu.Unlock()
	// The errors were returned once.
	if err := p.Flush(ctx); err != nil {
		t.Errorf("second Flush = %v, want nil", err)
	}
	if got := len(readAll(t, c.ListenAddrs(), schemas.DefaultNetworkTopic, 2)); got != 1 {
		t.Errorf("read %d network records, want 1", got)
	}
}

// TestDeliveryErrorRejectedByBroker: records the broker refuses with a
// non-retryable error reach the error handler from the writer's completion
// goroutine, and Flush.
func TestDeliveryErrorRejectedByBroker(t *testing.T) {
	const n = 5
	c := newCluster(t, 1)
	var (
		mu       sync.Mutex
		failed   []string
		produces int
	)
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		r := req.(*kmsg.ProduceRequest)
		resp := r.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = int16(kafka.TopicAuthorizationFailed)
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		mu.Lock()
		produces++
		mu.Unlock()
		return resp, nil, true
	})
	// One batch of exactly n records, so one produce request unless retried.
	p := newProducer(t, c, telemetry.WithBatchSize(n), telemetry.WithBatchTimeout(time.Hour),
		telemetry.WithErrorHandler(func(err error, rec schemas.Record) {
			mu.Lock()
			defer mu.Unlock()
			failed = append(failed, rec.TaskID)
		}))
	ctx := context.Background()
	for i := range n {
		must(t, p.Logger().RecordRetry(ctx, fmt.Sprintf("task-%d", i)))
	}
	err := p.Flush(ctx)
	const wantErr = `cannot deliver 5 records to topic "pipetel.events": [29] Topic Authorization Failed: the client is not authorized to access the requested topic`
	if err == nil || err.Error() != wantErr {
		t.Fatalf("Flush = %v, want %s", err, wantErr)
	}
	if !errors.Is(err, kafka.TopicAuthorizationFailed) {
		t.Errorf("errors.Is(%v, kafka.TopicAuthorizationFailed) = false", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"task-0", "task-1", "task-2", "task-3", "task-4"}; !slices.Equal(failed, want) {
		t.Errorf("handler called for %q, want %q", failed, want)
	}
	if produces != 1 {
		t.Errorf("%d produce requests, want 1 (the error is not retryable)", produces)
	}
}

// TestInvalidRecord: a record that fails validation is returned by the call
// and never sent.
func TestInvalidRecord(t *testing.T) {
	c := newCluster(t, 1)
	p := newProducer(t, c)
	log, net := p.Logger(), p.Network()
	ctx := context.Background()
	f := func(name string, err error, code schemas.Code, field, wantMsg string) {
		t.Helper()
		if !errors.Is(err, schemas.ErrInvalidRecord) {
			t.Errorf("%s: error %v, want one wrapping schemas.ErrInvalidRecord", name, err)
			return
		}
		var derr *schemas.DecodeError
		if !errors.As(err, &derr) || derr.Code != code || derr.Field != field {
			t.Errorf("%s: %#v, want code %s on field %q", name, derr, code, field)
		}
		if err.Error() != wantMsg {
			t.Errorf("%s: error %q, want %q", name, err, wantMsg)
		}
	}
	f("empty task id", log.StartEvent(ctx, "ingest", ""), schemas.CodeEmptyValue, "task_id",
		`cannot send start record for task "": invalid record: field "task_id": got "" (string), expected a non-empty string`)
	f("empty event name", log.StartEvent(ctx, "", "task-1"), schemas.CodeEmptyValue, "event_name",
		`cannot send start record for task "task-1": invalid record: field "event_name": got "" (string), expected a non-empty string`)
	f("negative process id", log.StartEvent(ctx, "ingest", "task-1", telemetry.WithProcessID(-1)), schemas.CodeNegativeValue, "process_id",
		`cannot send start record for task "task-1": invalid record: field "process_id": got -1 (number), expected an integer >= 0`)
	f("empty task id on retry", log.RecordRetry(ctx, ""), schemas.CodeEmptyValue, "task_id",
		`cannot send retry record for task "": invalid record: field "task_id": got "" (string), expected a non-empty string`)
	f("port 0", net.StartOperation(ctx, "task-1", "db.internal", 0), schemas.CodeOutOfRange, "port",
		`cannot send start record for task "task-1": invalid record: field "port": got 0 (number), expected an integer 1..65535`)
	f("empty host", net.StartOperation(ctx, "task-1", "", 5432), schemas.CodeEmptyValue, "host",
		`cannot send start record for task "task-1": invalid record: field "host": got "" (string), expected a non-empty string`)
	f("negative bytes", net.EndOperation(ctx, "task-1", -1, 0, nil), schemas.CodeNegativeValue, "bytes_sent",
		`cannot send end record for task "task-1": invalid record: field "bytes_sent": got -1 (number), expected an integer >= 0`)

	must(t, log.StartEvent(ctx, "ingest", "task-1"))
	must(t, p.Flush(ctx))
	msgs := readAll(t, c.ListenAddrs(), schemas.DefaultEventsTopic, 1)
	if len(msgs) != 1 || string(msgs[0].Key) != "task-1" {
		t.Errorf("read %d event records, want only the valid one", len(msgs))
	}
	if n := len(readAll(t, c.ListenAddrs(), schemas.DefaultNetworkTopic, 1)); n != 0 {
		t.Errorf("read %d network records, want 0", n)
	}
}

// TestBackPressure: with WithMaxInFlight(2) and batches that are only sent on
// Close, the third call blocks until its ctx ends, and Flush reports what is
// still in flight when its ctx ends.
func TestBackPressure(t *testing.T) {
	c := newCluster(t, 1)
	p := newProducer(t, c, telemetry.WithMaxInFlight(2), telemetry.WithBatchTimeout(time.Hour))
	log := p.Logger()
	ctx := context.Background()
	must(t, log.StartEvent(ctx, "ingest", "task-1"))
	must(t, log.EndEvent(ctx, "task-1", nil))

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	err := log.StartEvent(short, "ingest", "task-2")
	const wantErr = `cannot send start record for task "task-2": waiting for in-flight room: context deadline exceeded`
	if !errors.Is(err, context.DeadlineExceeded) || err.Error() != wantErr {
		t.Errorf("third call = %v, want %s", err, wantErr)
	}
	err = p.Flush(short)
	if !errors.Is(err, context.DeadlineExceeded) || err.Error() != "cannot flush 2 records: context deadline exceeded" {
		t.Errorf("Flush = %v, want cannot flush 2 records: context deadline exceeded", err)
	}
	must(t, p.Close(ctx))
	if n := len(readAll(t, c.ListenAddrs(), schemas.DefaultEventsTopic, 1)); n != 2 {
		t.Errorf("read %d records, want 2", n)
	}
}

// TestConcurrent sends from several goroutines; run with -race.
func TestConcurrent(t *testing.T) {
	const (
		workers = 8
		tasks   = 250
	)
	c := newCluster(t, 4)
	p := newProducer(t, c, telemetry.WithMaxInFlight(64))
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range tasks {
				id := fmt.Sprintf("w%d-task-%d", w, i)
				if err := p.Logger().StartEvent(ctx, "ingest", id); err != nil {
					t.Error(err)
					return
				}
				if i%10 == 0 {
					if err := p.Flush(ctx); err != nil {
						t.Error(err)
					}
				}
				if err := p.Logger().EndEvent(ctx, id, nil); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	must(t, p.Close(ctx))
	if n := len(readAll(t, c.ListenAddrs(), schemas.DefaultEventsTopic, 4)); n != 2*workers*tasks {
		t.Errorf("read %d records, want %d", n, 2*workers*tasks)
	}
}

func TestClosed(t *testing.T) {
	c := newCluster(t, 1)
	p := newProducer(t, c)
	ctx := context.Background()
	must(t, p.Logger().StartEvent(ctx, "ingest", "task-1"))
	must(t, p.Close(ctx))
	f := func(name string, err error, want string) {
		t.Helper()
		if !errors.Is(err, telemetry.ErrClosed) || err.Error() != want {
			t.Errorf("%s = %v, want %s", name, err, want)
		}
	}
	f("StartEvent", p.Logger().StartEvent(ctx, "ingest", "task-2"), `cannot send start record for task "task-2": producer closed`)
	f("EndOperation", p.Network().EndOperation(ctx, "task-2", 1, 2, nil), `cannot send end record for task "task-2": producer closed`)
	f("Flush", p.Flush(ctx), "cannot flush: producer closed")
	if err := p.Close(ctx); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if n := len(readAll(t, c.ListenAddrs(), schemas.DefaultEventsTopic, 1)); n != 1 {
		t.Errorf("read %d records, want 1", n)
	}
}

func TestNewProducerInvalidOption(t *testing.T) {
	f := func(brokers []string, opt telemetry.Option, want string) {
		t.Helper()
		_, err := telemetry.NewProducer(brokers, opt)
		if !errors.Is(err, telemetry.ErrInvalidOption) || err.Error() != want {
			t.Errorf("NewProducer = %v, want %s", err, want)
		}
	}
	ok := []string{"127.0.0.1:9092"}
	f(nil, telemetry.WithBatchSize(1), "cannot create producer: invalid option: brokers: got none, expected at least one host:port")
	f([]string{""}, telemetry.WithBatchSize(1), `cannot create producer: invalid option: brokers: got "", expected host:port`)
	f(ok, telemetry.WithEventsTopic(""), `cannot create producer: invalid option: WithEventsTopic: got "", expected a topic name`)
	f(ok, telemetry.WithNetworkTopic(""), `cannot create producer: invalid option: WithNetworkTopic: got "", expected a topic name`)
	f(ok, telemetry.WithClock(nil), "cannot create producer: invalid option: WithClock: got nil, expected a function")
	f(ok, telemetry.WithBatchSize(0), "cannot create producer: invalid option: WithBatchSize: got 0, expected >= 1")
	f(ok, telemetry.WithBatchTimeout(0), "cannot create producer: invalid option: WithBatchTimeout: got 0s, expected > 0")
	f(ok, telemetry.WithMaxInFlight(-1), "cannot create producer: invalid option: WithMaxInFlight: got -1, expected >= 1")
}
