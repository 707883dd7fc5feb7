"""The package puts a task's records on the partition pipetel and the Go SDK
compute: the Java client's murmur2 of the key (the Go SDK's tests check its
own placement against the same function)."""

import os
import uuid

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from pipetel import Producer

BROKER = os.environ.get("PIPETEL_TEST_KAFKA")


def java_murmur2(data):
    """org.apache.kafka.common.utils.Utils.murmur2, written here on its own."""
    m, r, mask = 0x5BD1E995, 24, 0xFFFFFFFF
    n = len(data)
    h = (0x9747B28C ^ n) & mask
    for i in range(0, n - n % 4, 4):
        k = data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    tail = data[n - n % 4:]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if len(tail) >= 1:
        h ^= tail[0]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h


@pytest.mark.parametrize("key, want", [
    ("21", -973932308), ("foobar", -790332482), ("a-little-bit-long-string", -985981536),
    ("a-little-bit-longer-string", -1486304829), ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    ("abc", 479470107),
])
def test_murmur2_vectors(key, want):
    """The vectors of Kafka's UtilsTest.testMurmur2 (signed 32-bit)."""
    h = java_murmur2(key.encode())
    assert (h - 2**32 if h >= 2**31 else h) == want


@pytest.mark.skipif(not BROKER, reason="needs PIPETEL_TEST_KAFKA (make test)")
def test_partition_matches_murmur2():
    topic = f"py-parts-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": BROKER})  # kept: the result needs the live handle
    admin.create_topics([NewTopic(topic, num_partitions=8, replication_factor=1)])[topic].result(30)
    p = Producer(BROKER, events_topic=topic)
    placed = {}

    tasks = [f"task-{i:04d}-{uuid.uuid4().hex[:4]}" for i in range(300)]
    for t in tasks:
        # The package's own producer and configuration, with a callback to
        # see where each record landed.
        p._p.produce(topic, key=t.encode(), value=b"{}",
                     on_delivery=lambda err, msg, t=t: placed.__setitem__(t, (err, msg.partition())))
    p.flush()
    for t in tasks:
        err, part = placed[t]
        assert err is None
        assert part == (java_murmur2(t.encode()) & 0x7FFFFFFF) % 8, t
