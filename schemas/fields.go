package schemas

import "strings"

// field identifies one JSON field of the contract. The tables below are the
// single Go statement of which fields each schema and kind has; the JSON
// Schema files are checked against them by a test.
type field uint8

const (
	fSchema field = iota
	fKind
	fTaskID
	fEventName
	fTime
	fPipelineID
	fProcessID
	fError
	fOpID
	fHost
	fPort
	fOperation
	fBytesSent
	fBytesReceived
	numFields
	fUnknown field = 255
)

var fieldNames = [numFields]string{
	fSchema:        "schema",
	fKind:          "kind",
	fTaskID:        "task_id",
	fEventName:     "event_name",
	fTime:          "time",
	fPipelineID:    "pipeline_id",
	fProcessID:     "process_id",
	fError:         "error",
	fOpID:          "op_id",
	fHost:          "host",
	fPort:          "port",
	fOperation:     "operation",
	fBytesSent:     "bytes_sent",
	fBytesReceived: "bytes_received",
}

func (f field) String() string { return fieldNames[f] }

// lookupField maps a JSON key to its field; the switch on a converted byte
// slice does not allocate.
func lookupField(key []byte) field {
	switch string(key) {
	case "schema":
		return fSchema
	case "kind":
		return fKind
	case "task_id":
		return fTaskID
	case "event_name":
		return fEventName
	case "time":
		return fTime
	case "pipeline_id":
		return fPipelineID
	case "process_id":
		return fProcessID
	case "error":
		return fError
	case "op_id":
		return fOpID
	case "host":
		return fHost
	case "port":
		return fPort
	case "operation":
		return fOperation
	case "bytes_sent":
		return fBytesSent
	case "bytes_received":
		return fBytesReceived
	}
	return fUnknown
}

// valueType is what a field's value must be.
type valueType uint8

const (
	tConst          valueType = iota // schema, kind: checked on their own
	tString                          // any string, "" allowed
	tNonEmptyString                  // a string other than ""
	tTime                            // an RFC 3339 date-time string
	tNonNegInt                       // an integer 0..MaxInt64
	tPort                            // an integer 1..65535
)

var fieldTypes = [numFields]valueType{
	fSchema:        tConst,
	fKind:          tConst,
	fTaskID:        tNonEmptyString,
	fEventName:     tNonEmptyString,
	fTime:          tTime,
	fPipelineID:    tString,
	fProcessID:     tNonNegInt,
	fError:         tString,
	fOpID:          tString,
	fHost:          tNonEmptyString,
	fPort:          tPort,
	fOperation:     tNonEmptyString,
	fBytesSent:     tNonNegInt,
	fBytesReceived: tNonNegInt,
}

// Expected texts, shared by the decoder and Validate.
const (
	expString         = "a string"
	expNonEmptyString = "a non-empty string"
	expTime           = `an RFC 3339 date-time such as "2024-05-01T12:00:00.5Z"`
	expTimeRange      = "an RFC 3339 date-time in years 0000..9999 (UTC), not 0001-01-01T00:00:00Z"
	expNonNegInt      = "an integer >= 0"
	expNonNegIntRange = "an integer 0..9223372036854775807"
	expPort           = "an integer 1..65535"
	expSchema         = `"` + EventSchema + `" or "` + NetworkSchema + `"`
	expEventKind      = `"start", "end" or "retry"`
	expNetworkKind    = `"start" or "end"`
	expObject         = "a json object"
	expUTF8           = "a string of valid utf-8"
)

func expectedFor(t valueType) string {
	switch t {
	case tString:
		return expString
	case tNonEmptyString:
		return expNonEmptyString
	case tTime:
		return expTime
	case tNonNegInt:
		return expNonNegInt
	case tPort:
		return expPort
	}
	return ""
}

// fieldSet is a set of fields.
type fieldSet uint16

func (s fieldSet) has(f field) bool { return s&(1<<f) != 0 }

func setOf(fs ...field) fieldSet {
	var s fieldSet
	for _, f := range fs {
		s |= 1 << f
	}
	return s
}

// shape is the field table of one schema and kind.
type shape struct {
	schema   string
	kind     Kind
	fields   []field // allowed fields in canonical (encoding) order
	required fieldSet
	allowed  fieldSet
	// unknownExpected is the Expected text of an unknown_field error.
	unknownExpected string
}

func newShape(schema string, kind Kind, fields []field, optional ...field) *shape {
	s := &shape{schema: schema, kind: kind, fields: fields}
	s.allowed = setOf(fields...)
	s.required = s.allowed &^ setOf(optional...)
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.String()
	}
	s.unknownExpected = "only " + strings.Join(names, ", ") + " in a " + schema + " " + string(kind) + " record"
	return s
}

var (
	eventStart = newShape(EventSchema, KindStart,
		[]field{fSchema, fKind, fTaskID, fEventName, fTime, fPipelineID, fProcessID},
		fPipelineID, fProcessID)
	eventEnd = newShape(EventSchema, KindEnd,
		[]field{fSchema, fKind, fTaskID, fTime, fError},
		fError)
	eventRetry = newShape(EventSchema, KindRetry,
		[]field{fSchema, fKind, fTaskID, fTime})
	networkStart = newShape(NetworkSchema, KindStart,
		[]field{fSchema, fKind, fTaskID, fOpID, fHost, fPort, fOperation, fTime},
		fOpID, fOperation)
	networkEnd = newShape(NetworkSchema, KindEnd,
		[]field{fSchema, fKind, fTaskID, fOpID, fTime, fBytesSent, fBytesReceived, fError},
		fOpID, fBytesSent, fBytesReceived, fError)

	shapes = []*shape{eventStart, eventEnd, eventRetry, networkStart, networkEnd}
)

// shapeFor returns the table of a schema and kind, or nil.
func shapeFor(schema string, kind Kind) *shape {
	switch schema {
	case EventSchema:
		switch kind {
		case KindStart:
			return eventStart
		case KindEnd:
			return eventEnd
		case KindRetry:
			return eventRetry
		}
	case NetworkSchema:
		switch kind {
		case KindStart:
			return networkStart
		case KindEnd:
			return networkEnd
		}
	}
	return nil
}

func kindExpected(schema string) string {
	if schema == NetworkSchema {
		return expNetworkKind
	}
	return expEventKind
}
