"""Records built by the package validate against pipetel's JSON Schema files."""

import datetime as dt
import json
import pathlib

import jsonschema
import pytest

from pipetel import records, RecordError

SCHEMAS = pathlib.Path(__file__).resolve().parents[3] / "schemas"
T = dt.datetime.now(dt.timezone.utc)


def validator(name):
    schema = json.loads((SCHEMAS / name).read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


EVENT, NETWORK = validator("event.v1.schema.json"), validator("network.v1.schema.json")


@pytest.mark.parametrize("rec", [
    records.event_start("t-1", "Transform", time=T),
    records.event_start("t-1", "Transform", time=T, pipeline_id="p-9", process_id=1234),
    records.event_end("t-1", time=T),
    records.event_end("t-1", time=T, error="ValueError: boom"),
    records.event_end("t-1", time=T, error="x" * 20000),
    records.event_retry("t-1", time=T),
])
def test_event_records_validate(rec):
    EVENT.validate(rec)


@pytest.mark.parametrize("rec", [
    records.network_start("t-1", "api.example.com", 443, time=T),
    records.network_start("t-1", "10.0.0.1", 8080, operation="fetch", op_id="op-2", time=T),
    records.network_end("t-1", time=T),
    records.network_end("t-1", op_id="op-2", time=T, bytes_sent=10, bytes_received=2048, error="timeout"),
])
def test_network_records_validate(rec):
    NETWORK.validate(rec)


def test_long_error_is_cut_like_pipetel():
    err = records.event_end("t", time=T, error="é" * 6000)["error"]
    assert len(err.encode()) <= 8192
    assert err.endswith(" [truncated: 12000 bytes]")


@pytest.mark.parametrize("build, field", [
    (lambda: records.event_start("", "x", time=T), "task_id"),
    (lambda: records.event_start("t" * 513, "x", time=T), "task_id"),
    (lambda: records.network_start("t", "h", 0, time=T), "port"),
    (lambda: records.network_start("t", "h", 70000, time=T), "port"),
    (lambda: records.network_end("t", time=T, bytes_sent=-1), "bytes_sent"),
    (lambda: records.event_retry("t", time=dt.datetime.now()), "time"),
])
def test_bad_input_names_the_field(build, field):
    with pytest.raises(RecordError) as e:
        build()
    assert e.value.field == field
    assert f"field {field!r}" in str(e.value)
