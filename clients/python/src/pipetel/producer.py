"""The Kafka side: one confluent-kafka producer, partitioned as pipetel expects."""

import json
import threading

from confluent_kafka import Producer as _KafkaProducer

DEFAULT_EVENTS_TOPIC = "pipetel.events"
DEFAULT_NETWORK_TOPIC = "pipetel.network"


class DeliveryError(Exception):
    """Records the brokers did not take: `failures` is a list of (record, error)."""

    def __init__(self, failures):
        self.failures = failures
        first = failures[0]
        super().__init__(f"cannot deliver {len(failures)} pipetel records; first: task_id {first[0].get('task_id')!r}: {first[1]}")


class Producer:
    """Sends pipetel records, keyed by task_id, with acks=all and the murmur2
    partitioner (the partitions pipetel's processor and the Go SDK compute).

    brokers: "host:port,host:port" or a list. Extra keywords are librdkafka
    settings, dots written as underscores (sasl_mechanism="SCRAM-SHA-512").
    Delivery is asynchronous: flush() waits and raises DeliveryError for what
    failed; records that failed stay reported until flush() returns.
    """

    def __init__(self, brokers, events_topic=DEFAULT_EVENTS_TOPIC, network_topic=DEFAULT_NETWORK_TOPIC, **config):
        if isinstance(brokers, (list, tuple)):
            brokers = ",".join(brokers)
        if not brokers:
            raise ValueError("brokers: got none, expected host:port")
        conf = {"bootstrap.servers": brokers, "partitioner": "murmur2_random", "acks": "all",
                "enable.idempotence": True, "linger.ms": 5}
        for k, v in config.items():
            conf[k.replace("_", ".")] = v
        self.events_topic, self.network_topic = events_topic, network_topic
        self._p = _KafkaProducer(conf)
        self._lock = threading.Lock()
        self._failures = []

    def send(self, record):
        """Queues one record (a dict from pipetel.records) on its topic."""
        topic = self.events_topic if record["schema"].startswith("pipetel.event/") else self.network_topic
        value = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

        def done(err, _msg, rec=record):
            if err is not None:
                with self._lock:
                    self._failures.append((rec, err))

        while True:
            try:
                self._p.produce(topic, key=record["task_id"].encode("utf-8"), value=value, on_delivery=done)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                self._p.poll(0.1)
        self._p.poll(0)

    def flush(self, timeout=30.0):
        """Waits until every queued record is delivered; raises DeliveryError for the ones that failed."""
        left = self._p.flush(timeout)
        with self._lock:
            failures, self._failures = self._failures, []
        if left:
            failures.append(({"task_id": None}, f"{left} records still queued after {timeout} s"))
        if failures:
            raise DeliveryError(failures)

    def close(self, timeout=30.0):
        self.flush(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
