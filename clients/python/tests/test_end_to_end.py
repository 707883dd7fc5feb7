"""The package against the real Kafka broker and a running pipetel.

Needs PIPETEL_TEST_KAFKA (make test sets it) and PIPETEL_BIN, a pipetel
binary (make test builds one)."""

import datetime as dt
import os
import socket
import subprocess
import time
import urllib.request
import uuid

import pytest

from pipetel import Client, NetworkTelemetry, Producer, TelemetryLogger, APIError

BROKER = os.environ.get("PIPETEL_TEST_KAFKA")
BIN = os.environ.get("PIPETEL_BIN")
pytestmark = pytest.mark.skipif(not BROKER or not BIN, reason="needs PIPETEL_TEST_KAFKA and PIPETEL_BIN (make test)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, cond, timeout=60.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            ok, last = cond()
            if ok:
                return last
        except Exception as e:  # not up yet
            last = e
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}: {last}")


@pytest.fixture
def pipetel(tmp_path):
    run = uuid.uuid4().hex[:8]
    events, network = f"py-{run}-events", f"py-{run}-network"
    port = free_port()
    cfg = tmp_path / "pipetel.yaml"
    cfg.write_text(f"""processor:
  brokers: ["{BROKER}"]
  group_id: py-{run}
  events_topic: {events}
  network_topic: {network}
  dead_letter_topic: py-{run}-dead
  create_topics: true
  partitions: 4
  session_timeout: 3s
  heartbeat_interval: 300ms
  rebalance_timeout: 3s
state:
  dir: {tmp_path / "state"}
http:
  listen: 127.0.0.1:{port}
log:
  level: warn
""")
    log = open(tmp_path / "pipetel.log", "wb")
    proc = subprocess.Popen([BIN, "run", "--config", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("pipetel ready", lambda: (urllib.request.urlopen(url + "/readyz", timeout=2).status == 200, "ready"))
        yield url, events, network
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()


def test_emit_and_read(pipetel):
    url, events, network = pipetel
    client = Client(url)
    producer = Producer(BROKER, events_topic=events, network_topic=network)
    log = TelemetryLogger(producer, pipeline_id="py-pipe", client=client)
    net = NetworkTelemetry(producer, client=client)
    run = uuid.uuid4().hex[:6]
    ok_ids = [f"ok-{run}-{i}" for i in range(20)]
    for i, task in enumerate(ok_ids):
        log.start_event("Transform", task, process_id=100 + i)
        for _ in range(i % 3):
            log.record_retry(task)
            time.sleep(0.002)  # retries count once per distinct record time
        log.end_event(task)
    failed = f"fail-{run}"
    with pytest.raises(ZeroDivisionError):
        with log.event("Load", failed):
            1 / 0
    slow = f"slow-{run}"
    log.start_event("Extract", slow)
    time.sleep(1.2)
    log.end_event(slow)
    running = f"running-{run}"
    log.start_event("Transform", running)
    with net.operation(ok_ids[0], "api.example.com", 443, operation="fetch", op_id="op-1") as op:
        op.bytes_sent, op.bytes_received = 10, 2048
    with pytest.raises(TimeoutError):
        with net.operation(ok_ids[1], "db.example.com", 5432, operation="query", op_id="op-2"):
            raise TimeoutError("no answer")
    producer.flush()

    wait_for("every event finished", lambda: (
        sum(1 for m in client.events() if m["status"] != "pending") == len(ok_ids) + 2, "finished"))
    m = client.get_metrics(ok_ids[2])
    assert (m["status"], m["retry_count"], m["event_name"], m["pipeline_id"], m["process_id"]) == ("completed", 2, "Transform", "py-pipe", 102)
    assert log.get_metrics(failed)["error"] == "ZeroDivisionError: division by zero"
    assert [e["task_id"] for e in client.get_failed_events()] == [failed]
    assert [e["task_id"] for e in client.get_slow_events(threshold_seconds=1.0)] == [slow]
    stats = client.get_retry_stats()
    assert stats["total_retries"] == sum(i % 3 for i in range(20))
    assert [e["task_id"] for e in client.get_running_events(longer_than_seconds=0.0)] == [running]
    assert client.get_running_events(longer_than_seconds=3600) == []

    wait_for("both operations finished", lambda: (len([o for o in client.network_ops() if o["status"] != "pending"]) == 2, "ops"))
    op1 = net.get_metrics(ok_ids[0], op_id="op-1")
    assert (op1["status"], op1["bytes_sent"], op1["bytes_received"], op1["operation"], op1["port"]) == ("completed", 10, 2048, "fetch", 443)
    assert [(o["task_id"], o["error"]) for o in net.get_failed_operations()] == [(ok_ids[1], "TimeoutError: no answer")]
    everything = client.get_all_metrics()
    assert len(everything.events) == len(ok_ids) + 3 and len(everything.network) == 2
    assert everything.to_json().startswith('{"events": [')

    with pytest.raises(APIError) as e:
        client.get_metrics("no-such-task")
    assert e.value.status == 404
