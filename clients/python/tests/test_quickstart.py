"""The issue's "done when": in a fresh venv, pip install ./clients/python; against
pipetel dev --rate 0 --kafka-listen 127.0.0.1:PORT, examples/quickstart.py emits
100 tasks and reads exactly their counts back through pipetel.Client.

Needs PIPETEL_BIN, a pipetel binary (make test builds one), and pip's index for
confluent-kafka (or pip's cache)."""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

BIN = os.environ.get("PIPETEL_BIN")
PACKAGE = pathlib.Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not BIN, reason="needs PIPETEL_BIN, a pipetel binary (make test)")

# What quickstart.py emits, counted by hand: tasks 3, 7, ..., 99 fail; task i
# retries i % 3 times; tasks 0..19 make one call each, the odd ones failing.
EMITTED = {
    "events": 100,
    "failed": 25,
    "retries": {"total_retries": 99, "events_with_retries": 66, "max_retries": 2,
                "events_by_retry_count": {"0": 34, "1": 33, "2": 33}},
    "network_ops": 20,
    "failed_network_ops": 10,
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, timeout, **kw):
    """cmd's result; its output in the failure when it fails."""
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    assert r.returncode == 0, f"{cmd} exited {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory):
    """The python of a new venv with only pip install ./clients/python in it."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    run([sys.executable, "-m", "venv", str(venv)], timeout=120)
    python = str(venv / "bin" / "python")
    run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(PACKAGE)], timeout=300)
    where = run([python, "-c", "import pipetel; print(pipetel.__file__)"], timeout=60, cwd=str(venv)).stdout.strip()
    assert where.startswith(str(venv)), f"the fresh venv imports pipetel from {where}"
    return python


@pytest.fixture
def dev(tmp_path):
    """pipetel dev --rate 0 --kafka-listen 127.0.0.1:PORT, until its /readyz says ready."""
    broker, api = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    err_path = tmp_path / "dev.stderr"
    err = open(err_path, "w")
    proc = subprocess.Popen([BIN, "dev", "--rate", "0", "--kafka-listen", broker, "--listen", api, "--partitions", "4"],
                            stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 60
        last = None
        while True:
            assert proc.poll() is None, f"pipetel dev exited {proc.returncode}:\n{err_path.read_text()}"
            try:
                if urllib.request.urlopen(f"http://{api}/readyz", timeout=2).status == 200:
                    break
            except OSError as e:  # not listening or not ready yet
                last = e
            assert time.monotonic() < deadline, f"pipetel dev not ready after 60 s ({last}):\n{err_path.read_text()}"
            time.sleep(0.1)
        yield broker, f"http://{api}", err_path
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        finally:
            err.close()
    assert code == 0, f"pipetel dev exited {code} on SIGINT:\n{err_path.read_text()}"


def test_quickstart_reads_back_what_it_emitted(fresh_python, dev):
    broker, api, err_path = dev
    started = err_path.read_text()
    assert (f"pipetel dev: Kafka broker {broker}, topics pipetel.events (events) and pipetel.network (network operations), "
            "4 partitions each; invalid records go to pipetel.deadletter\n") in started, started
    assert f"pipetel dev: no synthetic traffic (--rate 0): produce your own records to {broker}\n" in started, started

    r = run([fresh_python, str(PACKAGE / "examples" / "quickstart.py"), "--brokers", broker, "--api", api, "--timeout", "60"],
            timeout=120)
    out = json.loads(r.stdout)
    assert out["emitted"] == EMITTED
    assert out["read"] == EMITTED
    # pipetel dev ran nothing of its own: the API's statistics are the script's.
    assert out["retry_stats"] == EMITTED["retries"]
