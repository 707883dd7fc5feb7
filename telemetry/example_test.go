package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/pipetel/pipetel/schemas"
	"github.com/pipetel/pipetel/telemetry"
)

// A task's event and network records, sent to an embedded broker and read
// back with a kafka-go Reader.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1),
		kfake.SeedTopics(1, schemas.DefaultEventsTopic, schemas.DefaultNetworkTopic))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cluster.Close()

	p, err := telemetry.NewProducer(cluster.ListenAddrs())
	if err != nil {
		fmt.Println(err)
		return
	}
	log, net := p.Logger(), p.Network()
	for _, err := range []error{
		log.StartEvent(ctx, "ingest", "task-1", telemetry.WithPipelineID("nightly"), telemetry.WithProcessID(4242)),
		net.StartOperation(ctx, "task-1", "db.internal", 5432, telemetry.WithOperation("query")),
		log.RecordRetry(ctx, "task-1"),
		net.EndOperation(ctx, "task-1", 512, 2048, nil),
		log.EndEvent(ctx, "task-1", errors.New("disk full")),
	} {
		if err != nil {
			fmt.Println(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		fmt.Println(err)
		return
	}

	for _, topic := range []string{schemas.DefaultEventsTopic, schemas.DefaultNetworkTopic} {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers: cluster.ListenAddrs(),
			Topic:   topic,
			MaxWait: 500 * time.Millisecond,
		})
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				fmt.Println(err)
				break
			}
			rec, err := schemas.Decode(m.Value)
			if err != nil {
				fmt.Println(err)
				break
			}
			switch {
			case rec.Kind == schemas.KindStart && !rec.IsNetwork():
				fmt.Printf("%s %s: start %s pipeline=%s pid=%d\n", topic, m.Key, rec.EventName, rec.PipelineID, *rec.ProcessID)
			case rec.Kind == schemas.KindStart:
				fmt.Printf("%s %s: start %s %s:%d\n", topic, m.Key, rec.Operation, rec.Host, rec.Port)
			case rec.Kind == schemas.KindEnd && rec.IsNetwork():
				fmt.Printf("%s %s: end sent=%d received=%d\n", topic, m.Key, rec.BytesSent, rec.BytesReceived)
			case rec.Kind == schemas.KindEnd:
				fmt.Printf("%s %s: end error=%q\n", topic, m.Key, rec.Error)
			default:
				fmt.Printf("%s %s: %s\n", topic, m.Key, rec.Kind)
			}
			if m.Offset == m.HighWaterMark-1 {
				break
			}
		}
		r.Close()
	}
	// Output:
	// pipetel.events task-1: start ingest pipeline=nightly pid=4242
	// pipetel.events task-1: retry
	// pipetel.events task-1: end error="disk full"
	// pipetel.network task-1: start query db.internal:5432
	// pipetel.network task-1: end sent=512 received=2048
}

// Records that cannot be delivered, here because of a misspelt topic, reach
// the error handler one by one and Flush as one error per topic and cause.
func ExampleWithErrorHandler() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1),
		kfake.SeedTopics(1, schemas.DefaultEventsTopic, schemas.DefaultNetworkTopic))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cluster.Close()

	p, err := telemetry.NewProducer(cluster.ListenAddrs(),
		telemetry.WithEventsTopic("pipetel.evnets"),
		telemetry.WithErrorHandler(func(err error, rec schemas.Record) {
			fmt.Printf("lost %s record of %s\n", rec.Kind, rec.TaskID)
		}))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close(ctx)
	log := p.Logger()
	// The calls succeed: the records are valid and handed over.
	fmt.Println(log.StartEvent(ctx, "ingest", "task-1"))
	fmt.Println(log.EndEvent(ctx, "task-1", nil))
	fmt.Println(p.Flush(ctx))
	// Output:
	// lost start record of task-1
	// <nil>
	// lost end record of task-1
	// <nil>
	// cannot deliver 2 records to topic "pipetel.evnets": [3] Unknown Topic Or Partition: the request is for a topic or partition that does not exist on this broker
}
