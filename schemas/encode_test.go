package schemas

import (
	"errors"
	"testing"
	"time"
)

func int64p(v int64) *int64 { return &v }

// testTime is an encoding vector's time: these records never reach a store,
// a deadline or a retention, so the date cannot age.
var testTime = time.Date(2024, 5, 1, 12, 0, 0, 500_000_000, time.UTC)

func TestEncode(t *testing.T) {
	f := func(r Record, want string) {
		t.Helper()
		got, err := Encode(r)
		if err != nil {
			t.Fatalf("Encode(%+v): %v", r, err)
		}
		if string(got) != want {
			t.Fatalf("Encode(%+v)\n got %s\nwant %s", r, got, want)
		}
	}
	f(Record{Schema: EventSchema, Kind: KindStart, TaskID: "t1", EventName: "load", Time: testTime},
		`{"schema":"pipetel.event/v1","kind":"start","task_id":"t1","event_name":"load","time":"2024-05-01T12:00:00.500000000Z"}`)
	f(Record{Schema: EventSchema, Kind: KindStart, TaskID: "t1", EventName: "load", Time: testTime.In(time.FixedZone("", 2*3600)),
		PipelineID: "p", ProcessID: int64p(0)},
		`{"schema":"pipetel.event/v1","kind":"start","task_id":"t1","event_name":"load","time":"2024-05-01T12:00:00.500000000Z","pipeline_id":"p","process_id":0}`)
	f(Record{Schema: EventSchema, Kind: KindEnd, TaskID: "t1", Time: testTime},
		`{"schema":"pipetel.event/v1","kind":"end","task_id":"t1","time":"2024-05-01T12:00:00.500000000Z"}`)
	f(Record{Schema: EventSchema, Kind: KindEnd, TaskID: "t1", Time: testTime, Error: "boom \"x\"\n\x01\\é"},
		`{"schema":"pipetel.event/v1","kind":"end","task_id":"t1","time":"2024-05-01T12:00:00.500000000Z","error":"boom \"x\"\n\u0001\\é"}`)
	f(Record{Schema: EventSchema, Kind: KindRetry, TaskID: "t1", Time: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)},
		`{"schema":"pipetel.event/v1","kind":"retry","task_id":"t1","time":"0001-01-01T00:00:00.000000001Z"}`)
	f(Record{Schema: NetworkSchema, Kind: KindStart, TaskID: "t1", Host: "db", Port: 5432, Time: testTime},
		`{"schema":"pipetel.network/v1","kind":"start","task_id":"t1","host":"db","port":5432,"time":"2024-05-01T12:00:00.500000000Z"}`)
	f(Record{Schema: NetworkSchema, Kind: KindStart, TaskID: "t1", OpID: "o", Host: "db", Port: 5432, Operation: DefaultOperation, Time: testTime},
		`{"schema":"pipetel.network/v1","kind":"start","task_id":"t1","op_id":"o","host":"db","port":5432,"operation":"remote_call","time":"2024-05-01T12:00:00.500000000Z"}`)
	f(Record{Schema: NetworkSchema, Kind: KindEnd, TaskID: "t1", Time: testTime},
		`{"schema":"pipetel.network/v1","kind":"end","task_id":"t1","time":"2024-05-01T12:00:00.500000000Z"}`)
	f(Record{Schema: NetworkSchema, Kind: KindEnd, TaskID: "t1", OpID: "o", Time: testTime, BytesSent: 10, BytesReceived: 9223372036854775807, Error: "reset"},
		`{"schema":"pipetel.network/v1","kind":"end","task_id":"t1","op_id":"o","time":"2024-05-01T12:00:00.500000000Z","bytes_sent":10,"bytes_received":9223372036854775807,"error":"reset"}`)
}

func TestEncodeErrors(t *testing.T) {
	f := func(r Record, code Code, field, wantErr string) {
		t.Helper()
		dst := []byte("prefix")
		got, err := AppendEncode(dst, r)
		if string(got) != "prefix" {
			t.Fatalf("AppendEncode changed dst on error: %q", got)
		}
		var de *DecodeError
		if !errors.As(err, &de) || !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("AppendEncode(%+v) = %v, want a *DecodeError wrapping ErrInvalidRecord", r, err)
		}
		if de.Code != code || de.Field != field {
			t.Fatalf("AppendEncode(%+v): code %q field %q, want %q %q (%v)", r, de.Code, de.Field, code, field, err)
		}
		if wantErr != "" && err.Error() != wantErr {
			t.Fatalf("AppendEncode(%+v) error\n got %s\nwant %s", r, err, wantErr)
		}
		if err := r.Validate(); err == nil || err.Error() != de.Error() {
			t.Fatalf("Validate() = %v, want %v", err, de)
		}
	}
	es := Record{Schema: EventSchema, Kind: KindStart, TaskID: "t", EventName: "e", Time: testTime}
	ns := Record{Schema: NetworkSchema, Kind: KindStart, TaskID: "t", Host: "h", Port: 1, Time: testTime}
	ne := Record{Schema: NetworkSchema, Kind: KindEnd, TaskID: "t", Time: testTime}
	with := func(r Record, mod func(*Record)) Record { mod(&r); return r }

	f(with(es, func(r *Record) { r.Schema = "pipetel.event/v2" }), CodeUnknownSchema, "schema",
		`invalid record: field "schema": got "pipetel.event/v2" (string), expected "pipetel.event/v1" or "pipetel.network/v1"`)
	f(with(es, func(r *Record) { r.Schema = "" }), CodeUnknownSchema, "schema", "")
	f(with(ns, func(r *Record) { r.Kind = KindRetry }), CodeUnknownKind, "kind",
		`invalid record: field "kind": got "retry" (string), expected "start" or "end"`)
	f(with(es, func(r *Record) { r.Kind = "" }), CodeUnknownKind, "kind", "")
	f(with(es, func(r *Record) { r.TaskID = "" }), CodeEmptyValue, "task_id",
		`invalid record: field "task_id": got "" (string), expected a non-empty string`)
	f(with(es, func(r *Record) { r.EventName = "" }), CodeEmptyValue, "event_name", "")
	f(with(ns, func(r *Record) { r.Host = "" }), CodeEmptyValue, "host", "")
	f(with(es, func(r *Record) { r.Time = time.Time{} }), CodeMissingField, "time",
		`invalid record: field "time": missing, expected an RFC 3339 date-time such as "2024-05-01T12:00:00.5Z"`)
	f(with(es, func(r *Record) { r.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }), CodeBadTime, "time", "")
	f(with(es, func(r *Record) { r.Time = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) }), CodeBadTime, "time", "")
	f(with(es, func(r *Record) { r.Host = "h" }), CodeUnknownField, "host",
		`invalid record: field "host": got "h" (string), expected only schema, kind, task_id, event_name, time, pipeline_id, process_id in a pipetel.event/v1 start record`)
	f(with(ne, func(r *Record) { r.Port = 80 }), CodeUnknownField, "port", "")
	f(with(ne, func(r *Record) { r.Operation = "x" }), CodeUnknownField, "operation", "")
	f(with(ns, func(r *Record) { r.ProcessID = int64p(1) }), CodeUnknownField, "process_id", "")
	f(with(ns, func(r *Record) { r.Error = "x" }), CodeUnknownField, "error", "")
	f(with(es, func(r *Record) { r.ProcessID = int64p(-1) }), CodeNegativeValue, "process_id",
		`invalid record: field "process_id": got -1 (number), expected an integer >= 0`)
	f(with(ne, func(r *Record) { r.BytesSent = -1 }), CodeNegativeValue, "bytes_sent", "")
	f(with(ne, func(r *Record) { r.BytesReceived = -5 }), CodeNegativeValue, "bytes_received", "")
	f(with(ns, func(r *Record) { r.Port = 0 }), CodeOutOfRange, "port", "")
	f(with(ns, func(r *Record) { r.Port = 65536 }), CodeOutOfRange, "port",
		`invalid record: field "port": got 65536 (number), expected an integer 1..65535`)
	f(with(ns, func(r *Record) { r.Host = "a\xffb" }), CodeInvalidUTF8, "host",
		`invalid record: field "host": got "a\xffb" (string), expected a string of valid utf-8`)
	f(with(ne, func(r *Record) { r.Error = "\xc3" }), CodeInvalidUTF8, "error", "")
}
