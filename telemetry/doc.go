// Package telemetry is the Go producer SDK that pipelines use to emit pipetel
// records, the counterpart of the Python SDK's TelemetryLogger and
// NetworkTelemetry.
//
// # Usage
//
// One Producer per process owns one kafka-go Writer; its Logger and Network
// share it:
//
//	p, err := telemetry.NewProducer([]string{"kafka:9092"},
//		telemetry.WithErrorHandler(func(err error, rec schemas.Record) {
//			log.Printf("telemetry record for task %q lost: %v", rec.TaskID, err)
//		}))
//	if err != nil { ... }
//	defer p.Close(ctx) // delivers what is left; returns delivery errors
//
//	events, network := p.Logger(), p.Network()
//	events.StartEvent(ctx, "ingest", taskID, telemetry.WithPipelineID("nightly"))
//	network.StartOperation(ctx, taskID, "db.internal", 5432)
//	...
//	network.EndOperation(ctx, taskID, sent, received, err)
//	events.EndEvent(ctx, taskID, err)
//
// Every record is keyed by its task id, so that all records of a task land on
// one partition, in order; event records go to schemas.DefaultEventsTopic and
// network records to schemas.DefaultNetworkTopic unless WithEventsTopic and
// WithNetworkTopic say otherwise. The value is schemas.Encode of the record,
// whose time is read from the clock (WithClock, default time.Now) at the call.
//
// # Errors and blocking
//
// The calls do not wait for the network: they validate and encode the record,
// queue it in the asynchronous writer and return. They return an error, and
// send nothing, only when the record is invalid (an error wrapping
// schemas.ErrInvalidRecord, for example an empty task id or event name), when
// the producer is closed (ErrClosed), or when ctx ends while the call waits.
// A call waits when WithMaxInFlight records (default 100000) are in flight,
// which bounds memory when the cluster is slow or unreachable, and the first
// call waits for the cluster's metadata.
//
// Delivery failures are reported two ways, never only logged: the error handler
// (WithErrorHandler) is called for each record that was not delivered, and
// Flush returns the failures since the previous Flush as *DeliveryError
// values (one per topic and cause) joined with errors.Join. Flush waits until
// every record handed over before it is acknowledged or has failed. Close
// sends what the writer still holds, waits for it like Flush, and closes the
// writer.
//
// # Delivery guarantee
//
// The writer requires acknowledgement from all in-sync replicas (acks=all,
// kafka.RequireAll; how many replicas that is depends on the topic's
// min.insync.replicas) and retries failed produce requests (kafka-go's 10
// attempts, backing off 100ms to 1s). Delivery is therefore at least once: a
// request that reached the broker but whose answer was lost is sent again, so
// a record may be written twice; pipetel's processor deduplicates. Every
// record handed over is either acknowledged or reported as failed, except
// those still in flight when the process exits without Close.
//
// kafka-go does not retry before it has chosen a partition: while the cluster
// is unreachable, or the writer's metadata (refreshed every few seconds) does
// not list the topic, records fail at once and are reported, not retried.
//
// # Partitioning
//
// Keys are placed with kafka.Murmur2Balancer: partition =
// (murmur2(task_id) & 0x7fffffff) % partitions. This is the default for keyed
// records of the Java client (and so Kafka Streams and Kafka Connect) and of
// franz-go (kgo's default UniformBytesPartitioner, like its
// StickyKeyPartitioner, hashes keys with Kafka's murmur2), so records of one
// task from producers in those clients land on the same partition. Other clients must be
// configured to agree:
//
//   - librdkafka (confluent-kafka-python, confluent-kafka-go, kcat): the default
//     partitioner consistent_random hashes with CRC32 and does not agree; set
//     partitioner=murmur2_random.
//   - Sarama: the default NewHashPartitioner and NewReferenceHashPartitioner
//     hash with FNV-1a and do not agree; use
//     NewCustomPartitioner(WithAbsFirst(), WithCustomHashFunction(murmur2))
//     with a murmur2 hash.Hash32 of your own.
//   - kafka-go: kafka.Hash (FNV-1a) does not agree; use kafka.Murmur2Balancer.
package telemetry
