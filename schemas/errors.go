package schemas

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrInvalidRecord is returned, wrapped in a *DecodeError, for every record
// value that the decoder rejects and for every Record that Validate (and so
// Encode) rejects. Check it with errors.Is; use errors.As with *DecodeError for
// the code, field and value.
var ErrInvalidRecord = errors.New("invalid record")

// Code identifies why a record was rejected. Codes are stable identifiers,
// safe to use as metric label values; Codes lists all of them.
type Code string

// The rejection codes.
const (
	// CodeOversized: the value is longer than the decoder's MaxBytes. Checked
	// before anything else.
	CodeOversized Code = "oversized"
	// CodeMalformedJSON: the value is not exactly one syntactically valid JSON
	// value (bad syntax, trailing data, nesting deeper than 100 levels).
	CodeMalformedJSON Code = "malformed_json"
	// CodeUnknownSchema: "schema" names no known schema.
	CodeUnknownSchema Code = "unknown_schema"
	// CodeUnknownKind: "kind" is not a kind of the record's schema (network
	// records have no "retry").
	CodeUnknownKind Code = "unknown_kind"
	// CodeMissingField: a required field is absent (or, for Validate, a
	// required time is zero).
	CodeMissingField Code = "missing_field"
	// CodeWrongType: a field has the wrong JSON type (including null and a
	// number with a fraction or exponent where an integer is expected), or the
	// value is not a JSON object (Field is then empty).
	CodeWrongType Code = "wrong_type"
	// CodeUnknownField: a field that does not belong to the record's schema
	// and kind.
	CodeUnknownField Code = "unknown_field"
	// CodeDuplicateField: a field appears more than once in the object.
	CodeDuplicateField Code = "duplicate_field"
	// CodeBadTime: "time" is not an RFC 3339 date-time, or is outside years
	// 0000..9999 once converted to UTC, or is the zero time.
	CodeBadTime Code = "bad_time"
	// CodeNegativeValue: a count or id that must be >= 0 is negative.
	CodeNegativeValue Code = "negative_value"
	// CodeOutOfRange: an integer outside its range (port 1..65535, counts
	// above the int64 maximum).
	CodeOutOfRange Code = "out_of_range"
	// CodeEmptyValue: a string that must not be empty is "".
	CodeEmptyValue Code = "empty_value"
	// CodeInvalidUTF8: a string is not valid UTF-8 (including \u escapes of
	// unpaired surrogates).
	CodeInvalidUTF8 Code = "invalid_utf8"
	// CodeTooLong: an identifier or name (task_id, op_id, event_name,
	// operation, host, pipeline_id) is longer than MaxIDBytes. An error text
	// longer than MaxErrorBytes is not rejected but truncated (TruncateError).
	CodeTooLong Code = "too_long"
	// CodeKeyMismatch: the Kafka record's key is not the record's task_id,
	// so the task's records could land on different partitions and never
	// join. Decode does not see keys; the processor checks this (KeyError).
	CodeKeyMismatch Code = "key_mismatch"
)

// Codes lists every Code, so that a consumer can pre-create metric label
// values. Its order is stable; new codes are appended.
var Codes = []Code{
	CodeOversized,
	CodeMalformedJSON,
	CodeUnknownSchema,
	CodeUnknownKind,
	CodeMissingField,
	CodeWrongType,
	CodeUnknownField,
	CodeDuplicateField,
	CodeBadTime,
	CodeNegativeValue,
	CodeOutOfRange,
	CodeEmptyValue,
	CodeInvalidUTF8,
	CodeTooLong,
	CodeKeyMismatch,
}

// DecodeError says why a record was rejected. Field is the JSON field name
// ("" when the error concerns the whole value), Value a short rendering of the
// offending value (strings quoted, at most about 64 bytes, objects and arrays
// as {...} and [...]; for CodeOversized the size, for CodeMalformedJSON the
// offending byte and its offset) and Expected what would have been accepted.
// It wraps ErrInvalidRecord.
type DecodeError struct {
	Code     Code
	Field    string
	Value    string
	Expected string
}

// Error renders e in one lower-case line, for example
//
//	invalid record: field "port": got "443" (string), expected an integer 1..65535
func (e *DecodeError) Error() string {
	var b strings.Builder
	b.WriteString("invalid record")
	if e.Field != "" {
		b.WriteString(": field ")
		b.WriteString(strconv.Quote(e.Field))
	}
	b.WriteString(": ")
	switch e.Code {
	case CodeMissingField:
		b.WriteString("missing")
	case CodeDuplicateField:
		b.WriteString("duplicate, got ")
		b.WriteString(e.Value)
		writeType(&b, e.Value)
	case CodeMalformedJSON:
		b.WriteString("malformed json, got ")
		b.WriteString(e.Value)
	case CodeOversized:
		b.WriteString("got ")
		b.WriteString(e.Value)
	default:
		b.WriteString("got ")
		b.WriteString(e.Value)
		writeType(&b, e.Value)
	}
	if e.Expected != "" {
		b.WriteString(", expected ")
		b.WriteString(e.Expected)
	}
	return b.String()
}

// Unwrap returns ErrInvalidRecord.
func (e *DecodeError) Unwrap() error { return ErrInvalidRecord }

// writeType appends the JSON type of a rendered value, which is told by its
// first byte.
func writeType(b *strings.Builder, v string) {
	if v == "" {
		return
	}
	var t string
	switch v[0] {
	case '"':
		t = "string"
	case '{':
		t = "object"
	case '[':
		t = "array"
	case 't', 'f':
		t = "boolean"
	case 'n':
		t = "null"
	default:
		t = "number"
	}
	b.WriteString(" (")
	b.WriteString(t)
	b.WriteString(")")
}

// maxRendered bounds the bytes of a value or field name put into an error.
const maxRendered = 64

// truncate cuts s to at most maxRendered bytes on a rune boundary (when s is
// valid UTF-8 there) and marks the cut with "...".
func truncate(s string) string {
	if len(s) <= maxRendered {
		return s
	}
	n := maxRendered
	for n > maxRendered-utf8.UTFMax && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// renderString renders a string value as the errors show it: quoted, escaped
// and truncated.
func renderString(s string) string { return strconv.Quote(truncate(s)) }

func renderInt(v int64) string { return strconv.FormatInt(v, 10) }
