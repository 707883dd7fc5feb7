"""Client of pipetel's query API (any instance answers for the whole group)."""

import datetime as _dt
import json
import urllib.error
import urllib.parse
import urllib.request


class APIError(Exception):
    """An error answer of the API: status, message and, for a bad parameter, its name."""

    def __init__(self, status, message, parameter=None):
        self.status, self.message, self.parameter = status, message, parameter
        super().__init__(f"{message} (HTTP {status})")


class AllMetrics:
    """Every event and network metric: lists of dicts; to_json() is the one-string form."""

    def __init__(self, events, network):
        self.events, self.network = events, network

    def to_json(self):
        return json.dumps({"events": self.events, "network": self.network}, sort_keys=True)


def _duration(seconds):
    return f"{int(round(seconds * 1e9))}ns"


def _time(t):
    """A since/until bound: an aware datetime, sent as RFC 3339 in UTC, or a string sent as it is."""
    if isinstance(t, str):
        return t
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"time {t!r} has no time zone: pass an aware datetime")
    return t.astimezone(_dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _filters(status=None, slower_than_seconds=None, since=None, until=None, running_longer_than_seconds=None,
             top=None, **names):
    """The API's list parameters; names are event_name and pipeline_id (events only)."""
    params = {"status": status, **names}
    if slower_than_seconds:
        params["slower_than"] = _duration(slower_than_seconds)
    if since is not None:
        params["since"] = _time(since)
    if until is not None:
        params["until"] = _time(until)
    if running_longer_than_seconds is not None:
        params["running_longer_than"] = _duration(running_longer_than_seconds)
    if top is not None:
        params["top"] = top
    return {k: v for k, v in params.items() if v is not None}


class Client:
    """Reads pipetel's query API. List filters, as keywords of events(), network_ops() and the get_* lists:
    status, slower_than_seconds, since and until (bounds on the start time: aware datetimes or RFC 3339
    strings; since inclusive, until exclusive), running_longer_than_seconds (pending ones started longer ago
    than that by the pipetel instance's clock), top (the N slowest, one list), and for events event_name and
    pipeline_id. A bad value is an APIError 400 whose parameter names it."""

    def __init__(self, url, token=None, timeout=30.0, page_size=1000):
        self.url, self.token, self.timeout, self.page_size = url.rstrip("/"), token, timeout, page_size

    def _get(self, path, params=None):
        url = self.url + path
        if params:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(params)
        req = urllib.request.Request(url)
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            body = e.read()
            try:
                doc = json.loads(body)
                raise APIError(e.code, doc.get("error", body.decode(errors="replace")), doc.get("parameter")) from None
            except ValueError:
                raise APIError(e.code, body.decode(errors="replace").strip()) from None

    def _pages(self, path, params):
        params = dict(params)
        if "top" not in params:  # top answers one page, with no limit
            params["limit"] = self.page_size
        while True:
            page = self._get(path, params)
            yield from page.get("items", [])
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    def get_metrics(self, task_id):
        """The event metric of task_id (finished or running); APIError 404 when there is none."""
        return self._get("/api/v1/events/" + urllib.parse.quote(task_id, safe=""))

    def get_network_metrics(self, task_id, op_id=None):
        """One network operation of task_id (op_id "" is the one without an op_id; APIError 404 when there is
        none), or with op_id None the list of all of the task's operations (empty when it has none)."""
        path = "/api/v1/network/" + urllib.parse.quote(task_id, safe="")
        if op_id is None:
            return list(self._pages(path, {}))
        return self._get(path, {"op_id": op_id})

    def events(self, status=None, slower_than_seconds=None, event_name=None, pipeline_id=None, since=None, until=None,
               running_longer_than_seconds=None, top=None):
        """Iterates over the event metrics the filters keep, page by page."""
        return self._pages("/api/v1/events", _filters(status, slower_than_seconds, since, until, running_longer_than_seconds,
                                                      top, event_name=event_name, pipeline_id=pipeline_id))

    def network_ops(self, status=None, slower_than_seconds=None, since=None, until=None, running_longer_than_seconds=None,
                    top=None):
        """Iterates over the network metrics the filters keep, page by page."""
        return self._pages("/api/v1/network", _filters(status, slower_than_seconds, since, until, running_longer_than_seconds,
                                                       top))

    def get_all_metrics(self):
        return AllMetrics(list(self.events()), list(self.network_ops()))

    def get_failed_events(self, **filters):
        return list(self.events(status="failed", **filters))

    def get_slow_events(self, threshold_seconds=1.0, **filters):
        return list(self.events(slower_than_seconds=threshold_seconds, **filters))

    def get_slowest_events(self, n, **filters):
        """The n finished events with the longest duration across the group, longest first."""
        return list(self.events(top=n, **filters))

    def get_retry_stats(self):
        return self._get("/api/v1/retries")

    def get_failed_network_ops(self, **filters):
        return list(self.network_ops(status="failed", **filters))

    def get_slow_network_ops(self, threshold_seconds=1.0, **filters):
        return list(self.network_ops(slower_than_seconds=threshold_seconds, **filters))

    def get_slowest_network_ops(self, n, **filters):
        """The n finished network operations with the longest latency across the group, longest first."""
        return list(self.network_ops(top=n, **filters))

    def get_running_events(self, longer_than_seconds=0.0, **filters):
        """Events started but not finished, running for longer than longer_than_seconds by the pipetel
        instance's clock (the API filters: running_longer_than)."""
        return list(self.events(running_longer_than_seconds=longer_than_seconds, **filters))
