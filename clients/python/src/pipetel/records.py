"""Builders of pipetel v1 records, checked as pipetel's decoder checks them."""

import datetime as _dt

EVENT_SCHEMA = "pipetel.event/v1"
NETWORK_SCHEMA = "pipetel.network/v1"
MAX_ID_BYTES = 512
MAX_ERROR_BYTES = 8192


class RecordError(ValueError):
    """A record pipetel would refuse: names the field, the value and what was expected."""

    def __init__(self, field, value, expected):
        self.field, self.value, self.expected = field, value, expected
        super().__init__(f"invalid record: field {field!r}: got {value!r}, expected {expected}")


def _time(t):
    if t is None:
        t = _dt.datetime.now(_dt.timezone.utc)
    if t.tzinfo is None:
        raise RecordError("time", t.isoformat(), "a timezone-aware datetime")
    return t.astimezone(_dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _ident(field, value, required=True):
    if value is None or value == "":
        if required:
            raise RecordError(field, value, "a non-empty string")
        return None
    if not isinstance(value, str):
        raise RecordError(field, value, "a string")
    n = len(value.encode("utf-8"))
    if n > MAX_ID_BYTES:
        raise RecordError(field, value[:32] + "…", f"a string of at most {MAX_ID_BYTES} bytes (this one has {n})")
    return value


def _error(error):
    """pipetel keeps an error of any length, cut to 8 KiB with a marker; do the same here."""
    if error is None or error == "":
        return None
    text = str(error)
    raw = text.encode("utf-8")
    if len(raw) <= MAX_ERROR_BYTES:
        return text
    marker = f" [truncated: {len(raw)} bytes]"
    keep = raw[: MAX_ERROR_BYTES - len(marker.encode())].decode("utf-8", errors="ignore")
    return keep + marker


def _count(field, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RecordError(field, value, "an integer >= 0")
    return value


def event_start(task_id, event_name, time=None, pipeline_id=None, process_id=None):
    rec = {"schema": EVENT_SCHEMA, "kind": "start", "task_id": _ident("task_id", task_id),
           "event_name": _ident("event_name", event_name), "time": _time(time)}
    if _ident("pipeline_id", pipeline_id, required=False):
        rec["pipeline_id"] = pipeline_id
    if _count("process_id", process_id) is not None:
        rec["process_id"] = process_id
    return rec


def event_end(task_id, time=None, error=None):
    rec = {"schema": EVENT_SCHEMA, "kind": "end", "task_id": _ident("task_id", task_id), "time": _time(time)}
    err = _error(error)
    if err:
        rec["error"] = err
    return rec


def event_retry(task_id, time=None):
    return {"schema": EVENT_SCHEMA, "kind": "retry", "task_id": _ident("task_id", task_id), "time": _time(time)}


def network_start(task_id, host, port, operation="remote_call", op_id=None, time=None):
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise RecordError("port", port, "an integer 1..65535")
    rec = {"schema": NETWORK_SCHEMA, "kind": "start", "task_id": _ident("task_id", task_id),
           "host": _ident("host", host), "port": port, "time": _time(time)}
    if _ident("op_id", op_id, required=False):
        rec["op_id"] = op_id
    if _ident("operation", operation, required=False):
        rec["operation"] = operation
    return rec


def network_end(task_id, op_id=None, time=None, bytes_sent=0, bytes_received=0, error=None):
    rec = {"schema": NETWORK_SCHEMA, "kind": "end", "task_id": _ident("task_id", task_id), "time": _time(time)}
    if _ident("op_id", op_id, required=False):
        rec["op_id"] = op_id
    if _count("bytes_sent", bytes_sent):
        rec["bytes_sent"] = bytes_sent
    if _count("bytes_received", bytes_received):
        rec["bytes_received"] = bytes_received
    err = _error(error)
    if err:
        rec["error"] = err
    return rec
