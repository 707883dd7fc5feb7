"""Emit 100 tasks with the pipetel package and read their metrics back.

Start pipetel with an embedded broker and no traffic of its own, then run this:

    pipetel dev --rate 0 --kafka-listen 127.0.0.1:9092
    python clients/python/examples/quickstart.py --brokers 127.0.0.1:9092 --api http://127.0.0.1:9464

The 100 tasks run side by side, as a pipeline's workers would: 25 of them fail,
66 retry (33 once, 33 twice) and the first 20 make a network call each, 10 of
which fail. The script waits until pipetel has finished every one of them (or
--timeout passes), then prints one JSON line with what it emitted, what it read
back through pipetel.Client and the API's retry statistics, and exits 0 only
when what it read is what it emitted. The counts read are this run's own tasks
(their ids start with a run id), so it can run again against the same pipetel;
the retry statistics are the API's, over every finished event.
"""

import argparse
import json
import sys
import time
import uuid

from pipetel import Client, NetworkTelemetry, Producer, TelemetryLogger

TASKS = 100
NETWORK_TASKS = 20
EVENT_NAMES = ["Extract", "Transform", "Load"]


def plan(i):
    """Task i's fate: failed, its retries, and whether its network call fails (None: no call)."""
    failed = i % 4 == 3
    retries = i % 3
    network_fails = (i % 2 == 1) if i < NETWORK_TASKS else None
    return failed, retries, network_fails


def emit(producer, run):
    log = TelemetryLogger(producer, pipeline_id="quickstart")
    net = NetworkTelemetry(producer)
    ids = [f"quickstart-{run}-{i:03d}" for i in range(TASKS)]
    for i, task_id in enumerate(ids):
        log.start_event(EVENT_NAMES[i % len(EVENT_NAMES)], task_id, process_id=1000 + i % 8)
    for i, task_id in enumerate(ids):
        _, _, network_fails = plan(i)
        if network_fails is None:
            continue
        try:
            with net.operation(task_id, "api.example.com", 443, operation="fetch", op_id="page-1") as op:
                op.bytes_sent = 512
                if network_fails:
                    raise ConnectionError("connection reset by peer")
                op.bytes_received = 8192
        except ConnectionError:
            pass  # recorded as the operation's error; the task goes on
    # Retries in rounds over all tasks: pipetel counts a task's retries per
    # distinct record time, and a whole round lies between two of one task's.
    for round_ in range(1, 3):
        for i, task_id in enumerate(ids):
            if plan(i)[1] >= round_:
                log.record_retry(task_id)
    for i, task_id in enumerate(ids):
        failed = plan(i)[0]
        log.end_event(task_id, error="upstream returned 503" if failed else None)
    producer.flush()  # raises DeliveryError if the broker did not take a record


def expected():
    by_count = {}
    for i in range(TASKS):
        r = plan(i)[1]
        by_count[str(r)] = by_count.get(str(r), 0) + 1
    retries = [plan(i)[1] for i in range(TASKS)]
    calls = [plan(i)[2] for i in range(TASKS) if plan(i)[2] is not None]
    return {
        "events": TASKS,
        "failed": sum(plan(i)[0] for i in range(TASKS)),
        "retries": {"total_retries": sum(retries), "events_with_retries": sum(r > 0 for r in retries),
                    "max_retries": max(retries), "events_by_retry_count": by_count},
        "network_ops": len(calls),
        "failed_network_ops": sum(calls),
    }


def read_back(client, run, timeout):
    """This run's metrics once all are finished; the last view if the deadline passes first."""
    prefix = f"quickstart-{run}-"
    deadline = time.monotonic() + timeout
    while True:
        everything = client.get_all_metrics()
        events = [m for m in everything.events if m["task_id"].startswith(prefix) and m["status"] != "pending"]
        ops = [m for m in everything.network if m["task_id"].startswith(prefix) and m["status"] != "pending"]
        if (len(events), len(ops)) == (TASKS, NETWORK_TASKS) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    by_count = {}
    for m in events:
        by_count[str(m["retry_count"])] = by_count.get(str(m["retry_count"]), 0) + 1
    retries = [m["retry_count"] for m in events]
    return {
        "events": len(events),
        "failed": sum(m["task_id"].startswith(prefix) for m in client.get_failed_events()),
        "retries": {"total_retries": sum(retries), "events_with_retries": sum(r > 0 for r in retries),
                    "max_retries": max(retries, default=0), "events_by_retry_count": by_count},
        "network_ops": len(ops),
        "failed_network_ops": sum(m["task_id"].startswith(prefix) for m in client.get_failed_network_ops()),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--brokers", default="127.0.0.1:9092", help="Kafka bootstrap servers (pipetel dev --kafka-listen)")
    ap.add_argument("--api", default="http://127.0.0.1:9464", help="pipetel's query API (pipetel dev --listen)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for pipetel to finish the tasks")
    args = ap.parse_args(argv)

    run = uuid.uuid4().hex[:8]
    producer = Producer(args.brokers)
    emit(producer, run)
    client = Client(args.api)
    want, got = expected(), read_back(client, run, args.timeout)
    print(json.dumps({"run": run, "emitted": want, "read": got, "retry_stats": client.get_retry_stats()}, sort_keys=True))
    if got != want:
        print(f"quickstart: read back {got}, expected {want} (after waiting up to {args.timeout} s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
