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


class Client:
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

    def _pages(self, path, **params):
        params = {k: v for k, v in params.items() if v is not None}
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
        return self._get("/api/v1/network/" + urllib.parse.quote(task_id, safe=""), {"op_id": op_id or ""})

    def events(self, status=None, slower_than_seconds=None):
        return self._pages("/api/v1/events", status=status,
                           slower_than=_duration(slower_than_seconds) if slower_than_seconds else None)

    def network_ops(self, status=None, slower_than_seconds=None):
        return self._pages("/api/v1/network", status=status,
                           slower_than=_duration(slower_than_seconds) if slower_than_seconds else None)

    def get_all_metrics(self):
        return AllMetrics(list(self.events()), list(self.network_ops()))

    def get_failed_events(self):
        return list(self.events(status="failed"))

    def get_slow_events(self, threshold_seconds=1.0):
        return list(self.events(slower_than_seconds=threshold_seconds))

    def get_retry_stats(self):
        return self._get("/api/v1/retries")

    def get_failed_network_ops(self):
        return list(self.network_ops(status="failed"))

    def get_slow_network_ops(self, threshold_seconds=1.0):
        return list(self.network_ops(slower_than_seconds=threshold_seconds))

    def get_running_events(self, longer_than_seconds=0.0, now=None):
        """Events started but not finished, running for longer than longer_than_seconds."""
        now = now or _dt.datetime.now(_dt.timezone.utc)
        out = []
        for m in self.events(status="pending"):
            start = m.get("start_time")
            if not start:
                continue
            started = _dt.datetime.fromisoformat(_parse_time(start))
            if (now - started).total_seconds() > longer_than_seconds:
                out.append(m)
        return out


def _parse_time(s):
    """RFC 3339 with up to nanoseconds, as pipetel writes it, to a datetime (microseconds)."""
    s = s.replace("Z", "+00:00").replace("z", "+00:00")
    main, _, rest = s.partition(".")
    if not rest:
        return main
    digits = ""
    i = 0
    while i < len(rest) and rest[i].isdigit():
        digits += rest[i]
        i += 1
    return main + "." + (digits + "000000")[:6] + rest[i:]
