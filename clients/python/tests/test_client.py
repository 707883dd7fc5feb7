"""Client against a local HTTP server that plays the query API: the
requests it sends (paths, parameters) and how it reads the answers. No
broker needed."""

import datetime as dt
import http.server
import json
import threading
import urllib.parse

import pytest

from pipetel import APIError, Client


class FakeAPI(http.server.BaseHTTPRequestHandler):
    """Answers from `routes` (path -> list of (query dict, status, body)), records every request."""

    routes, requests = {}, []

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        FakeAPI.requests.append((url.path, query))
        for want, status, body in FakeAPI.routes.get(url.path, []):
            if want == query:
                break
        else:
            status, body = 599, {"error": f"unexpected request {url.path} {query}"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def api():
    FakeAPI.routes, FakeAPI.requests = {}, []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeAPI)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield FakeAPI, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def ev(task):
    return {"task_id": task, "status": "pending"}


def test_running_events_use_the_server_filter(api):
    fake, url = api
    fake.routes["/api/v1/events"] = [
        ({"running_longer_than": "300000000000ns", "limit": "2"}, 200, {"items": [ev("a"), ev("b")], "next_cursor": "c1"}),
        ({"running_longer_than": "300000000000ns", "limit": "2", "cursor": "c1"}, 200, {"items": [ev("c")]}),
        ({"running_longer_than": "0ns", "limit": "2", "event_name": "load"}, 200, {"items": []}),
    ]
    c = Client(url, page_size=2)
    assert [m["task_id"] for m in c.get_running_events(longer_than_seconds=300)] == ["a", "b", "c"]
    assert c.get_running_events(event_name="load") == []
    assert len(fake.requests) == 3


def test_network_metrics_of_a_task(api):
    fake, url = api
    ops = [{"task_id": "a/b", "op_id": "q1"}, {"task_id": "a/b", "op_id": ""}]
    fake.routes["/api/v1/network/a%2Fb"] = [
        ({"limit": "1000"}, 200, {"items": ops}),
        ({"op_id": "q1"}, 200, ops[0]),
        ({"op_id": ""}, 200, ops[1]),
    ]
    fake.routes["/api/v1/network/none"] = [({"limit": "1000"}, 200, {"items": []})]
    c = Client(url)
    assert c.get_network_metrics("a/b") == ops
    assert c.get_network_metrics("a/b", op_id="q1") == ops[0]
    assert c.get_network_metrics("a/b", op_id="") == ops[1]
    assert c.get_network_metrics("none") == []


def test_filters_and_top(api):
    fake, url = api
    since = dt.datetime(2000, 1, 1, 12, 0, 0, 500000, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    fake.routes["/api/v1/events"] = [
        ({"status": "failed", "event_name": "load", "pipeline_id": "nightly", "since": "2000-01-01T10:00:00.500000Z",
          "until": "2000-01-02T00:00:00Z", "limit": "1000"}, 200, {"items": [ev("f")]}),
        ({"top": "3", "slower_than": "1000000000ns"}, 200, {"items": [ev("s1"), ev("s2")]}),
    ]
    fake.routes["/api/v1/network"] = [
        ({"top": "2", "since": "2000-01-01T10:00:00.500000Z"}, 200, {"items": [{"task_id": "n"}]}),
    ]
    c = Client(url)
    got = c.get_failed_events(event_name="load", pipeline_id="nightly", since=since, until="2000-01-02T00:00:00Z")
    assert [m["task_id"] for m in got] == ["f"]
    assert [m["task_id"] for m in c.get_slowest_events(3, slower_than_seconds=1)] == ["s1", "s2"]
    assert c.get_slowest_network_ops(2, since=since) == [{"task_id": "n"}]
    with pytest.raises(ValueError, match="no time zone"):
        c.get_failed_events(since=dt.datetime(2000, 1, 1))
    # Network metrics have no event name: not a parameter of network_ops.
    with pytest.raises(TypeError):
        c.get_failed_network_ops(event_name="load")


def test_bad_value_is_an_api_error(api):
    fake, url = api
    body = {"error": 'invalid parameter "since": got "yesterday", expected an RFC 3339 time', "parameter": "since"}
    fake.routes["/api/v1/events"] = [({"since": "yesterday", "limit": "1000"}, 400, body)]
    with pytest.raises(APIError) as e:
        Client(url).get_slow_events(threshold_seconds=0, since="yesterday")
    assert (e.value.status, e.value.parameter, e.value.message) == (400, "since", body["error"])
