package schemas

import (
	"time"
	"unicode/utf8"
)

// Validate reports whether r can be encoded as a record of its schema and
// kind, by the rules the decoder applies to the wire form: a known schema and
// a kind of that schema; a non-empty TaskID; a non-zero Time within years
// 0000..9999 in UTC; the required fields of the kind (EventName for an event
// start, Host and Port 1..65535 for a network start); ProcessID, BytesSent and
// BytesReceived >= 0; all strings valid UTF-8; identifiers and names at most
// MaxIDBytes (an Error over MaxErrorBytes is valid: Encode truncates it, as
// the decoder does); and every field that does not
// belong to the schema and kind left at its zero value. Empty optional strings
// (PipelineID, Error, OpID, Operation) are allowed and not encoded; an empty
// Operation decodes as DefaultOperation.
//
// A failure is a *DecodeError wrapping ErrInvalidRecord, with the JSON field
// name in Field.
func (r Record) Validate() error {
	if err := r.validate(); err != nil {
		return err
	}
	return nil
}

// validate returns the shape of r or the reason r has none; it returns a
// concrete pointer so that Encode needs no type assertion.
func (r *Record) validate() *DecodeError {
	sh, err := r.shape()
	if err != nil {
		return err
	}
	// Foreign fields first, like the decoder reports unknown fields before
	// checking values.
	for f := fTaskID; f < numFields; f++ {
		if !sh.allowed.has(f) && !r.isZero(f) {
			return &DecodeError{Code: CodeUnknownField, Field: f.String(), Value: r.render(f), Expected: sh.unknownExpected}
		}
	}
	for _, f := range sh.fields {
		if err := r.check(f, sh.required.has(f)); err != nil {
			return err
		}
	}
	return nil
}

func (r *Record) shape() (*shape, *DecodeError) {
	if r.Schema != EventSchema && r.Schema != NetworkSchema {
		return nil, &DecodeError{Code: CodeUnknownSchema, Field: "schema", Value: renderString(r.Schema), Expected: expSchema}
	}
	sh := shapeFor(r.Schema, r.Kind)
	if sh == nil {
		return nil, &DecodeError{Code: CodeUnknownKind, Field: "kind", Value: renderString(string(r.Kind)), Expected: kindExpected(r.Schema)}
	}
	return sh, nil
}

func (r *Record) str(f field) string {
	switch f {
	case fTaskID:
		return r.TaskID
	case fEventName:
		return r.EventName
	case fPipelineID:
		return r.PipelineID
	case fError:
		return r.Error
	case fOpID:
		return r.OpID
	case fHost:
		return r.Host
	case fOperation:
		return r.Operation
	}
	return ""
}

func (r *Record) isZero(f field) bool {
	switch f {
	case fTime:
		return r.Time.IsZero()
	case fProcessID:
		return r.ProcessID == nil
	case fPort:
		return r.Port == 0
	case fBytesSent:
		return r.BytesSent == 0
	case fBytesReceived:
		return r.BytesReceived == 0
	}
	return r.str(f) == ""
}

func (r *Record) render(f field) string {
	switch f {
	case fTime:
		return renderString(r.Time.Format(time.RFC3339Nano))
	case fProcessID:
		if r.ProcessID == nil {
			return "null"
		}
		return renderInt(*r.ProcessID)
	case fPort:
		return renderInt(int64(r.Port))
	case fBytesSent:
		return renderInt(r.BytesSent)
	case fBytesReceived:
		return renderInt(r.BytesReceived)
	}
	return renderString(r.str(f))
}

func (r *Record) check(f field, required bool) *DecodeError {
	switch t := fieldTypes[f]; t {
	case tConst:
		return nil
	case tString, tNonEmptyString:
		s := r.str(f)
		if s == "" {
			if required {
				return &DecodeError{Code: CodeEmptyValue, Field: f.String(), Value: `""`, Expected: expNonEmptyString}
			}
			return nil
		}
		if !utf8.ValidString(s) {
			return &DecodeError{Code: CodeInvalidUTF8, Field: f.String(), Value: renderString(s), Expected: expUTF8}
		}
		if f != fError && len(s) > MaxIDBytes {
			return tooLong(f, s, len(s))
		}
	case tTime:
		if r.Time.IsZero() {
			return &DecodeError{Code: CodeMissingField, Field: f.String(), Expected: expTime}
		}
		if !timeInRange(r.Time) {
			return &DecodeError{Code: CodeBadTime, Field: f.String(), Value: r.render(f), Expected: expTimeRange}
		}
	case tNonNegInt:
		var v int64
		switch f {
		case fProcessID:
			if r.ProcessID == nil {
				return nil
			}
			v = *r.ProcessID
		case fBytesSent:
			v = r.BytesSent
		case fBytesReceived:
			v = r.BytesReceived
		}
		if v < 0 {
			return &DecodeError{Code: CodeNegativeValue, Field: f.String(), Value: renderInt(v), Expected: expNonNegInt}
		}
	case tPort:
		if r.Port < 1 || r.Port > 65535 {
			return &DecodeError{Code: CodeOutOfRange, Field: f.String(), Value: renderInt(int64(r.Port)), Expected: expPort}
		}
	}
	return nil
}

// timeInRange reports whether t is a time the contract can carry: not the
// zero time, and in years 0000..9999 in UTC so that its RFC 3339 form has a
// four-digit year.
func timeInRange(t time.Time) bool {
	if t.IsZero() {
		return false
	}
	y := t.UTC().Year()
	return y >= 0 && y <= 9999
}
