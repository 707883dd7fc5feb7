package schemas

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func utc(y int, mo time.Month, d, h, mi, s, ns int) time.Time {
	return time.Date(y, mo, d, h, mi, s, ns, time.UTC)
}

// validFixtures is what each file in testdata/valid decodes to.
var validFixtures = map[string]Record{
	"event_start_full": {Schema: EventSchema, Kind: KindStart, TaskID: "task-1", EventName: "extract_orders",
		Time: utc(2024, 5, 1, 12, 0, 0, 123456000), PipelineID: "nightly-etl", ProcessID: int64p(48213)},
	"event_start_minimal": {Schema: EventSchema, Kind: KindStart, TaskID: "task-1", EventName: "load",
		Time: utc(2024, 5, 1, 12, 0, 0, 0)},
	"event_start_reordered": {Schema: EventSchema, Kind: KindStart, TaskID: "t", EventName: "e",
		Time: utc(2024, 3, 1, 0, 29, 59, 500000000), ProcessID: int64p(0)},
	"event_end_ok": {Schema: EventSchema, Kind: KindEnd, TaskID: "task-1", Time: utc(2024, 5, 1, 12, 0, 3, 1)},
	"event_end_failed": {Schema: EventSchema, Kind: KindEnd, TaskID: "task-1", Time: utc(2024, 5, 1, 12, 0, 3, 0),
		Error: "café \U0001F600 \"quoted\"\n\t/ résumé"},
	"event_end_empty_error": {Schema: EventSchema, Kind: KindEnd, TaskID: "task-1", Time: utc(2024, 5, 1, 12, 0, 3, 0)},
	"event_retry":           {Schema: EventSchema, Kind: KindRetry, TaskID: "task-1", Time: utc(2024, 5, 1, 12, 0, 1, 250000000)},
	"network_start_full": {Schema: NetworkSchema, Kind: KindStart, TaskID: "task-1", OpID: "op-17", Host: "orders-db.internal",
		Port: 5432, Operation: "db_query", Time: utc(2024, 5, 1, 12, 0, 1, 123456789)},
	"network_start_defaults": {Schema: NetworkSchema, Kind: KindStart, TaskID: "task-1", Host: "api.example.com",
		Port: 443, Operation: DefaultOperation, Time: utc(2024, 5, 1, 12, 0, 1, 0)},
	"network_end_full": {Schema: NetworkSchema, Kind: KindEnd, TaskID: "task-1", OpID: "op-17", Time: utc(2024, 5, 1, 12, 0, 2, 500000000),
		BytesSent: 512, BytesReceived: 9223372036854775807, Error: "connection reset"},
	"network_end_minimal": {Schema: NetworkSchema, Kind: KindEnd, TaskID: "task-1", Time: utc(2024, 5, 1, 12, 0, 2, 0)},
}

func TestDecodeValidFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/valid/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(validFixtures) {
		t.Fatalf("%d files in testdata/valid, %d expectations", len(files), len(validFixtures))
	}
	kinds := map[string]bool{}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		want, ok := validFixtures[name]
		if !ok {
			t.Fatalf("%s: no expectation", file)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s:\n got %+v\nwant %+v", file, got, want)
		}
		if got.Time.Location() != time.UTC {
			t.Fatalf("%s: time in %v, want UTC", file, got.Time.Location())
		}
		kinds[got.Schema+" "+string(got.Kind)] = true

		// Round trip: the canonical form decodes to the same record and
		// re-encodes to itself.
		enc, err := Encode(got)
		if err != nil {
			t.Fatalf("%s: Encode: %v", file, err)
		}
		again, err := Decode(enc)
		if err != nil || !reflect.DeepEqual(again, want) {
			t.Fatalf("%s: Decode(Encode) = %+v, %v", file, again, err)
		}
		enc2, _ := Encode(again)
		if string(enc2) != string(enc) {
			t.Fatalf("%s: canonical form not stable:\n%s\n%s", file, enc, enc2)
		}
	}
	if len(kinds) != len(shapes) {
		t.Fatalf("valid fixtures cover %d schema/kind pairs, want %d", len(kinds), len(shapes))
	}
}

func TestDecodeInvalidFixtures(t *testing.T) {
	f, err := os.Open("testdata/invalid/expected.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	listed := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		cols := strings.Split(line, "\t")
		if len(cols) != 3 {
			t.Fatalf("expected.tsv: bad line %q", line)
		}
		name, code, field := cols[0], Code(cols[1]), strings.TrimPrefix(cols[2], "-")
		listed[name] = true
		b, err := os.ReadFile(filepath.Join("testdata/invalid", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Decode(b)
		var de *DecodeError
		if !errors.As(err, &de) || de.Code != code || de.Field != field {
			t.Fatalf("%s: got %v, want code %q field %q", name, err, code, field)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("testdata/invalid/*.json")
	if len(files) != len(listed) {
		t.Fatalf("%d files in testdata/invalid, %d listed in expected.tsv", len(files), len(listed))
	}
}

const (
	hdrE  = `{"schema":"pipetel.event/v1",`
	hdrN  = `{"schema":"pipetel.network/v1",`
	tOK   = `"time":"2024-05-01T12:00:00Z"`
	eRet  = hdrE + `"kind":"retry","task_id":"t",` + tOK
	nEnd  = hdrN + `"kind":"end","task_id":"t",` + tOK
	nStrt = hdrN + `"kind":"start","task_id":"t","host":"h",` + tOK
	eStrt = hdrE + `"kind":"start","task_id":"t","event_name":"e",` + tOK
)

func TestDecodeErrors(t *testing.T) {
	seen := map[Code]bool{}
	f := func(in string, code Code, field, value string) {
		t.Helper()
		r, err := Decode([]byte(in))
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("Decode(%q) = %+v, %v; want a *DecodeError", in, r, err)
		}
		if !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("Decode(%q): %v does not wrap ErrInvalidRecord", in, err)
		}
		if !reflect.DeepEqual(r, Record{}) {
			t.Fatalf("Decode(%q) returned %+v with an error", in, r)
		}
		if de.Code != code || de.Field != field || de.Value != value {
			t.Fatalf("Decode(%q):\n got code %q field %q value %q (%v)\nwant code %q field %q value %q", in, de.Code, de.Field, de.Value, err, code, field, value)
		}
		seen[code] = true
	}
	// at renders a syntax error k bytes after eRet.
	at := func(got string, k int) string { return got + " at offset " + strconv.Itoa(len(eRet)+k) }

	// Syntax, checked over the whole input before anything else.
	f(``, CodeMalformedJSON, "", "end of input")
	f(" \n", CodeMalformedJSON, "", "end of input")
	f(`{`, CodeMalformedJSON, "", "end of input")
	f(`{"schema"`, CodeMalformedJSON, "", "end of input")
	f(`{"schema":}`, CodeMalformedJSON, "", "'}' at offset 10")
	f(`{"schema":"x",}`, CodeMalformedJSON, "", "'}' at offset 14")
	f(`{"schema" "x"}`, CodeMalformedJSON, "", `'"' at offset 10`)
	f(`{schema:1}`, CodeMalformedJSON, "", "'s' at offset 1")
	f(`{'a':1}`, CodeMalformedJSON, "", "''' at offset 1")
	f(eRet+`}}`, CodeMalformedJSON, "", at("'}'", 1))
	f(eRet+`}x`, CodeMalformedJSON, "", at("'x'", 1))
	f(eRet+`}`+"\x00", CodeMalformedJSON, "", at("byte 0x00", 1))
	f(eRet+`,"x":tru}`, CodeMalformedJSON, "", at("'}'", 8))
	f(eRet+`,"x":nul}`, CodeMalformedJSON, "", at("'}'", 8))
	f(eRet+`,"x":01}`, CodeMalformedJSON, "", at("'1'", 6))
	f(eRet+`,"x":-}`, CodeMalformedJSON, "", at("'}'", 6))
	f(eRet+`,"x":1.}`, CodeMalformedJSON, "", at("'}'", 7))
	f(eRet+`,"x":1e}`, CodeMalformedJSON, "", at("'}'", 7))
	f(eRet+`,"x":+1}`, CodeMalformedJSON, "", at("'+'", 5))
	f(eRet+`,"x":NaN}`, CodeMalformedJSON, "", at("'N'", 5))
	f(eRet+`,"x":"\x"}`, CodeMalformedJSON, "", at("'x'", 7))
	f(eRet+`,"x":"\u12g4"}`, CodeMalformedJSON, "", at("'g'", 10))
	f(eRet+`,"x":"a`+"\t"+`"}`, CodeMalformedJSON, "", at("byte 0x09", 7))
	f(eRet+`,"x":[1,]}`, CodeMalformedJSON, "", at("']'", 8))
	f(eRet+`,"x":{"a" 1}}`, CodeMalformedJSON, "", at("'1'", 10))
	f(eRet+`,"x":[1 2]}`, CodeMalformedJSON, "", at("'2'", 8))
	f(eRet+`,"x":`+strings.Repeat("[", 100)+strings.Repeat("]", 100)+`}`, CodeMalformedJSON, "", at("'['", 104))
	f("\xef\xbb\xbf"+eRet+`}`, CodeMalformedJSON, "", "byte 0xef at offset 0")
	// Malformed wins over any field problem that comes before it.
	f(`{"schema":"nope","kind":1,`, CodeMalformedJSON, "", "end of input")

	// Not an object.
	f(`[]`, CodeWrongType, "", "[...]")
	f(` "pipetel.event/v1" `, CodeWrongType, "", `"pipetel.event/v1"`)
	f(`null`, CodeWrongType, "", "null")
	f(`42`, CodeWrongType, "", "42")
	f(`true`, CodeWrongType, "", "true")

	// Duplicates, before schema and kind.
	f(`{"task_id":"a","task_id":"a"}`, CodeDuplicateField, "task_id", `"a"`)
	f(eRet+`,"schema":"pipetel.event/v1"}`, CodeDuplicateField, "schema", `"pipetel.event/v1"`)
	f(eRet+`,"t\u0069me":"2024-05-01T12:00:00Z"}`, CodeDuplicateField, "time", `"2024-05-01T12:00:00Z"`)

	// Schema and kind.
	f(`{}`, CodeMissingField, "schema", "")
	f(`{"kind":"start","task_id":"t"}`, CodeMissingField, "schema", "")
	f(`{"schema":1}`, CodeWrongType, "schema", "1")
	f(`{"schema":null}`, CodeWrongType, "schema", "null")
	f(`{"schema":"pipetel.event/v2","x":1}`, CodeUnknownSchema, "schema", `"pipetel.event/v2"`)
	f(`{"schema":"PIPETEL.EVENT/V1"}`, CodeUnknownSchema, "schema", `"PIPETEL.EVENT/V1"`)
	f(`{"schema":""}`, CodeUnknownSchema, "schema", `""`)
	f(hdrE+`"task_id":"t"}`, CodeMissingField, "kind", "")
	f(hdrE+`"kind":["start"]}`, CodeWrongType, "kind", "[...]")
	f(hdrE+`"kind":"Start"}`, CodeUnknownKind, "kind", `"Start"`)
	f(hdrN+`"kind":"retry","task_id":"t",`+tOK+`}`, CodeUnknownKind, "kind", `"retry"`)
	// Escapes in schema and kind are decoded before comparing.
	f(`{"schema":"pipetel.event\/v1","kind":"r\u0065try","task_id":"t","time":"x"}`, CodeBadTime, "time", `"x"`)

	// Fields that do not belong, in input order, before missing fields.
	f(hdrE+`"kind":"start","host":"h"}`, CodeUnknownField, "host", `"h"`)
	f(eRet+`,"Task_ID":"t"}`, CodeUnknownField, "Task_ID", `"t"`)
	f(eRet+`,"":0}`, CodeUnknownField, "", "0")
	f(eRet+`,"event_name":"e"}`, CodeUnknownField, "event_name", `"e"`)
	f(eRet+`,"error":"x"}`, CodeUnknownField, "error", `"x"`)
	f(eStrt+`,"error":"x"}`, CodeUnknownField, "error", `"x"`)
	f(eStrt+`,"bytes_sent":1}`, CodeUnknownField, "bytes_sent", "1")
	f(nEnd+`,"port":443}`, CodeUnknownField, "port", "443")
	f(nEnd+`,"operation":"x"}`, CodeUnknownField, "operation", `"x"`)
	f(nStrt+`,"port":1,"bytes_sent":1}`, CodeUnknownField, "bytes_sent", "1")
	f(nStrt+`,"port":1,"error":"x"}`, CodeUnknownField, "error", `"x"`)
	f(nEnd+`,"process_id":1}`, CodeUnknownField, "process_id", "1")
	f(nEnd+`,"extra":{"a":[1,{"b":null}]}}`, CodeUnknownField, "extra", "{...}")
	f(nEnd+`,"`+strings.Repeat("k", 70)+`":1}`, CodeUnknownField, strings.Repeat("k", 64)+"...", "1")

	// Missing required fields, in contract order.
	f(hdrE+`"kind":"start"}`, CodeMissingField, "task_id", "")
	f(hdrE+`"kind":"start","task_id":"t"}`, CodeMissingField, "event_name", "")
	f(hdrE+`"kind":"start","task_id":"t","event_name":"e"}`, CodeMissingField, "time", "")
	f(hdrE+`"kind":"end","task_id":"t"}`, CodeMissingField, "time", "")
	f(hdrE+`"kind":"retry","time":"2024-05-01T12:00:00Z"}`, CodeMissingField, "task_id", "")
	f(hdrN+`"kind":"start","task_id":"t","port":1,`+tOK+`}`, CodeMissingField, "host", "")
	f(nStrt+`}`, CodeMissingField, "port", "")
	f(hdrN+`"kind":"end","task_id":"t"}`, CodeMissingField, "time", "")

	// Wrong types, null included.
	f(hdrE+`"kind":"retry","task_id":1,`+tOK+`}`, CodeWrongType, "task_id", "1")
	f(hdrE+`"kind":"retry","task_id":null,`+tOK+`}`, CodeWrongType, "task_id", "null")
	f(eRet[:len(eRet)-len(tOK)]+`"time":1714564800}`, CodeWrongType, "time", "1714564800")
	f(eStrt+`,"pipeline_id":null}`, CodeWrongType, "pipeline_id", "null")
	f(eStrt+`,"pipeline_id":7}`, CodeWrongType, "pipeline_id", "7")
	f(eStrt+`,"process_id":1.5}`, CodeWrongType, "process_id", "1.5")
	f(eStrt+`,"process_id":1.0}`, CodeWrongType, "process_id", "1.0")
	f(eStrt+`,"process_id":1e3}`, CodeWrongType, "process_id", "1e3")
	f(eStrt+`,"process_id":"1"}`, CodeWrongType, "process_id", `"1"`)
	f(eStrt+`,"process_id":null}`, CodeWrongType, "process_id", "null")
	f(nStrt+`,"port":"443"}`, CodeWrongType, "port", `"443"`)
	f(nStrt+`,"port":true}`, CodeWrongType, "port", "true")
	f(nStrt+`,"port":1,"op_id":5}`, CodeWrongType, "op_id", "5")
	f(nStrt+`,"port":1,"operation":null}`, CodeWrongType, "operation", "null")
	f(nEnd+`,"bytes_sent":"0"}`, CodeWrongType, "bytes_sent", `"0"`)
	f(nEnd+`,"bytes_received":[]}`, CodeWrongType, "bytes_received", "[...]")
	f(nEnd+`,"error":false}`, CodeWrongType, "error", "false")
	f(hdrE+`"kind":"end","task_id":"t",`+tOK+`,"error":{}}`, CodeWrongType, "error", "{...}")

	// Values.
	f(hdrE+`"kind":"retry","task_id":"",`+tOK+`}`, CodeEmptyValue, "task_id", `""`)
	f(hdrE+`"kind":"start","task_id":"t","event_name":"",`+tOK+`}`, CodeEmptyValue, "event_name", `""`)
	f(hdrN+`"kind":"start","task_id":"t","host":"","port":1,`+tOK+`}`, CodeEmptyValue, "host", `""`)
	f(nStrt+`,"port":1,"operation":""}`, CodeEmptyValue, "operation", `""`)
	f(nStrt+`,"port":0}`, CodeOutOfRange, "port", "0")
	f(nStrt+`,"port":-0}`, CodeOutOfRange, "port", "-0")
	f(nStrt+`,"port":-443}`, CodeOutOfRange, "port", "-443")
	f(nStrt+`,"port":65536}`, CodeOutOfRange, "port", "65536")
	f(nStrt+`,"port":99999999999999999999999}`, CodeOutOfRange, "port", "99999999999999999999999")
	f(nEnd+`,"bytes_sent":-1}`, CodeNegativeValue, "bytes_sent", "-1")
	f(nEnd+`,"bytes_received":-99999999999999999999}`, CodeNegativeValue, "bytes_received", "-99999999999999999999")
	f(nEnd+`,"bytes_sent":9223372036854775808}`, CodeOutOfRange, "bytes_sent", "9223372036854775808")
	f(eStrt+`,"process_id":-1}`, CodeNegativeValue, "process_id", "-1")
	f(eStrt+`,"process_id":18446744073709551616}`, CodeOutOfRange, "process_id", "18446744073709551616")
	f(nEnd+`,"bytes_sent":`+strings.Repeat("9", 70)+`}`, CodeOutOfRange, "bytes_sent", strings.Repeat("9", 64)+"...")
	f(hdrE+`"kind":"retry","task_id":"a`+"\xff"+`b",`+tOK+`}`, CodeInvalidUTF8, "task_id", `"a\xffb"`)
	f(hdrE+`"kind":"retry","task_id":"`+"\xed\xa0\x80"+`",`+tOK+`}`, CodeInvalidUTF8, "task_id", `"\xed\xa0\x80"`)
	f(nEnd+`,"error":"\udc00"}`, CodeInvalidUTF8, "error", `"�"`)
	f(nEnd+`,"op_id":"\ud800\u0041"}`, CodeInvalidUTF8, "op_id", `"�A"`)
	f(nEnd+`,"op_id":"\ud800"}`, CodeInvalidUTF8, "op_id", `"�"`)
	f(nEnd+`,"op_id":"\ud800\ud800"}`, CodeInvalidUTF8, "op_id", `"��"`)

	// Times.
	bt := func(ts string) {
		t.Helper()
		f(hdrE+`"kind":"retry","task_id":"t","time":"`+ts+`"}`, CodeBadTime, "time", `"`+ts+`"`)
	}
	bt("")
	bt("2024-05-01T12:00:00")
	bt("2024-05-01 12:00:00Z")
	bt("2024-05-01T12:00:00.Z")
	bt("2024-05-01T12:00:00,5Z")
	bt("2024-05-01T12:00:60Z")
	bt("2024-05-01T24:00:00Z")
	bt("2023-02-29T12:00:00Z")
	bt("2024-05-01T12:00:00+2:00")
	bt("2024-05-01T12:00:00+24:00")
	bt("1714564800")
	bt("0001-01-01T00:00:00Z")
	bt("0001-01-01T01:00:00+01:00")
	bt("0000-01-01T00:00:00+00:01")
	bt("9999-12-31T23:59:59-00:01")
	bt("2024-05-01T12:00:00Zjunk")
	f(hdrE+`"kind":"retry","task_id":"t","time":"2024-05-01T12:00:00`+"\xff"+`"}`, CodeBadTime, "time", `"2024-05-01T12:00:00\xff"`)

	// A long string value is cut to 64 bytes on a rune boundary.
	long := strings.Repeat("é", 40)
	f(eRet+`,"x":"`+long+`"}`, CodeUnknownField, "x", `"`+strings.Repeat("é", 32)+`..."`)

	f(string(make([]byte, DefaultMaxRecordBytes+1)), CodeOversized, "", "65537 bytes")

	// Identifiers and names over MaxIDBytes; the value shows their start.
	over := strings.Repeat("a", MaxIDBytes+1)
	shown := `"` + strings.Repeat("a", 64) + `..."`
	f(hdrE+`"kind":"retry","task_id":"`+over+`",`+tOK+`}`, CodeTooLong, "task_id", shown)
	f(hdrE+`"kind":"start","task_id":"t","event_name":"`+over+`",`+tOK+`}`, CodeTooLong, "event_name", shown)
	f(hdrE+`"kind":"start","task_id":"t","event_name":"e","pipeline_id":"`+over+`",`+tOK+`}`, CodeTooLong, "pipeline_id", shown)
	f(hdrN+`"kind":"end","task_id":"t","op_id":"`+over+`",`+tOK+`}`, CodeTooLong, "op_id", shown)
	f(hdrN+`"kind":"start","task_id":"t","host":"`+over+`","port":1,`+tOK+`}`, CodeTooLong, "host", shown)
	f(hdrN+`"kind":"start","task_id":"t","host":"h","port":1,"operation":"`+over+`",`+tOK+`}`, CodeTooLong, "operation", shown)
	// Escapes count as the bytes they decode to: 512 "\u00e9" are 1024 bytes.
	f(hdrE+`"kind":"retry","task_id":"`+strings.Repeat(`\u00e9`, MaxIDBytes/2+1)+`",`+tOK+`}`, CodeTooLong, "task_id", `"`+strings.Repeat("é", 32)+`..."`)
	seen[CodeKeyMismatch] = true // not the decoder's: see TestKeyError
	for _, c := range Codes {
		if !seen[c] {
			t.Errorf("no test case for code %q", c)
		}
	}
}

func TestDecodeErrorText(t *testing.T) {
	f := func(in string, want string) {
		t.Helper()
		_, err := Decode([]byte(in))
		if err == nil || err.Error() != want {
			t.Fatalf("Decode(%q) error\n got %v\nwant %s", in, err, want)
		}
	}
	f(nStrt+`,"port":"443"}`, `invalid record: field "port": got "443" (string), expected an integer 1..65535`)
	f(nStrt+`}`, `invalid record: field "port": missing, expected an integer 1..65535`)
	f(`{"schema":"pipetel.event/v1","kind":"end","task_id":"t",`+tOK+`,"host":"h"}`,
		`invalid record: field "host": got "h" (string), expected only schema, kind, task_id, time, error in a pipetel.event/v1 end record`)
	f(`{"schema":"x"}`, `invalid record: field "schema": got "x" (string), expected "pipetel.event/v1" or "pipetel.network/v1"`)
	f(hdrN+`"kind":"retry"}`, `invalid record: field "kind": got "retry" (string), expected "start" or "end"`)
	f(`{"task_id":"a","task_id":"b"}`, `invalid record: field "task_id": duplicate, got "b" (string), expected each field at most once`)
	f(`{"schema":"x",}`, `invalid record: malformed json, got '}' at offset 14, expected '"' starting a field name`)
	f(eRet+`} x`, `invalid record: malformed json, got 'x' at offset `+strconv.Itoa(len(eRet)+2)+`, expected end of input`)
	f(`[1]`, `invalid record: got [...] (array), expected a json object`)
	f(hdrE+`"kind":"retry","task_id":null,`+tOK+`}`, `invalid record: field "task_id": got null (null), expected a non-empty string`)
	f(hdrE+`"kind":"retry","task_id":"t","time":"2024-05-01T12:00:00"}`,
		`invalid record: field "time": got "2024-05-01T12:00:00" (string), expected an RFC 3339 date-time such as "2024-05-01T12:00:00.5Z"`)
	f(nEnd+`,"bytes_sent":-1}`, `invalid record: field "bytes_sent": got -1 (number), expected an integer >= 0`)
	f(hdrE+`"kind":"retry","task_id":"",`+tOK+`}`, `invalid record: field "task_id": got "" (string), expected a non-empty string`)
	f(nEnd+`,"op_id":"\ud800"}`, `invalid record: field "op_id": got "�" (string), expected a string of valid utf-8`)
	_, err := Decoder{MaxBytes: 10}.Decode([]byte(`{"schema":1}`))
	if err == nil || err.Error() != `invalid record: got 12 bytes, expected at most 10 bytes` {
		t.Fatalf("oversized: %v", err)
	}
}

func TestDecoderMaxBytes(t *testing.T) {
	rec := []byte(eRet + `}`)
	f := func(max int, in []byte, wantCode Code) {
		t.Helper()
		_, err := Decoder{MaxBytes: max}.Decode(in)
		var de *DecodeError
		switch {
		case wantCode == "" && err != nil:
			t.Fatalf("MaxBytes %d, %d bytes: %v", max, len(in), err)
		case wantCode != "" && (!errors.As(err, &de) || de.Code != wantCode):
			t.Fatalf("MaxBytes %d, %d bytes: %v, want %s", max, len(in), err, wantCode)
		}
	}
	f(len(rec), rec, "")
	f(len(rec)-1, rec, CodeOversized)
	f(0, rec, "")
	f(-1, rec, "")
	// The length is checked before the syntax.
	f(3, []byte(`{{{{`), CodeOversized)
	padded := append(append([]byte{}, rec...), make([]byte, DefaultMaxRecordBytes-len(rec))...)
	for i := len(rec); i < len(padded); i++ {
		padded[i] = ' '
	}
	f(0, padded, "")
	f(0, append(padded, ' '), CodeOversized)
	f(DefaultMaxRecordBytes+1, append(padded, ' '), "")
}

func TestCodes(t *testing.T) {
	seen := map[Code]bool{}
	for _, c := range Codes {
		if seen[c] || c == "" || strings.ToLower(string(c)) != string(c) || strings.ContainsAny(string(c), " -.") {
			t.Fatalf("code %q: duplicate, empty or not a lower-case identifier", c)
		}
		seen[c] = true
	}
	if len(Codes) != 15 {
		t.Fatalf("%d codes, want 15", len(Codes))
	}
}

func TestLimits(t *testing.T) {
	at := func(task string) string { return hdrE + `"kind":"retry","task_id":"` + task + `",` + tOK + `}` }
	// Exactly MaxIDBytes is accepted.
	if r, err := Decode([]byte(at(strings.Repeat("a", MaxIDBytes)))); err != nil || len(r.TaskID) != MaxIDBytes {
		t.Fatalf("a task_id of %d bytes: %v", MaxIDBytes, err)
	}
	_, err := Decode([]byte(at(strings.Repeat("a", MaxIDBytes+1))))
	if err == nil || err.Error() != `invalid record: field "task_id": got "`+strings.Repeat("a", 64)+`..." (string), expected a string of at most 512 bytes (this one has 513)` {
		t.Fatalf("too long task_id: %v", err)
	}

	// An error over MaxErrorBytes is cut and marked, not rejected, in the
	// decoder and in Encode alike.
	f := func(errText, want string) {
		t.Helper()
		end := hdrE + `"kind":"end","task_id":"t",` + tOK + `,"error":` + strconv.Quote(errText) + `}`
		r, err := Decode([]byte(end))
		if err != nil || r.Error != want {
			t.Fatalf("decoded error of %d bytes: %d bytes %q…, err %v; want %d bytes", len(errText), len(r.Error), r.Error[:min(20, len(r.Error))], err, len(want))
		}
		enc, err := Encode(Record{Schema: EventSchema, Kind: KindEnd, TaskID: "t", Time: r.Time, Error: errText})
		if err != nil {
			t.Fatal(err)
		}
		back, err := Decode(enc)
		if err != nil || back.Error != want {
			t.Fatalf("encoded error of %d bytes comes back with %d bytes (%v), want %d", len(errText), len(back.Error), err, len(want))
		}
	}
	fits := strings.Repeat("x", MaxErrorBytes)
	f(fits, fits)
	long := strings.Repeat("x", 20000)
	marker := " [truncated: 20000 bytes]"
	f(long, long[:MaxErrorBytes-len(marker)]+marker)
	// Cut on a rune boundary: 3-byte runes, so the cut falls inside one.
	wide := strings.Repeat("€", 5000) // 15000 bytes
	marker = " [truncated: 15000 bytes]"
	n := (MaxErrorBytes - len(marker)) / 3 * 3
	f(wide, wide[:n]+marker)
	if got := TruncateError(wide); len(got) > MaxErrorBytes || !utf8.ValidString(got) {
		t.Fatalf("TruncateError: %d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
	}

	// Validate rejects what the decoder rejects, so the SDK fails at the call.
	err = Record{Schema: EventSchema, Kind: KindRetry, TaskID: strings.Repeat("a", MaxIDBytes+1), Time: time.Unix(1, 0)}.Validate()
	var de *DecodeError
	if !errors.As(err, &de) || de.Code != CodeTooLong || de.Field != "task_id" {
		t.Fatalf("Validate of a long task_id: %v", err)
	}
}

func TestKeyError(t *testing.T) {
	err := KeyError([]byte("other"), "t1")
	if !errors.Is(err, ErrInvalidRecord) || err.Code != CodeKeyMismatch ||
		err.Error() != `invalid record: field "task_id": got "t1" (string), expected the record's key, "other"` {
		t.Fatalf("KeyError: %v", err)
	}
}
