// Package schemas is pipetel's record and API contract: the JSON records that
// pipelines write to Kafka (version 1, one JSON object per record value, key =
// task_id), the metrics that pipetel derives from them, a strict decoder whose
// errors name the field, the value and what was expected, and the query API's
// wire types (routes, parameters, Page, RetrySummary, ErrorBody), which the
// server, the Go client and the CLI share. It imports nothing outside the
// standard library.
//
// # Records
//
// Every record has "schema" and "kind"; the other fields depend on both, and
// no other field is allowed. Optional fields are marked with "?".
//
//	pipetel.event/v1    start  task_id, event_name, time, pipeline_id?, process_id?
//	pipetel.event/v1    end    task_id, time, error?
//	pipetel.event/v1    retry  task_id, time
//	pipetel.network/v1  start  task_id, op_id?, host, port, operation?, time
//	pipetel.network/v1  end    task_id, op_id?, time, bytes_sent?, bytes_received?, error?
//
// Types: task_id, event_name, host and operation are non-empty strings;
// pipeline_id, op_id and error are strings ("" allowed); time is an RFC 3339
// date-time string, fractional seconds and any offset allowed; port is an
// integer 1..65535; process_id, bytes_sent and bytes_received are integers
// 0..9223372036854775807. Defaults when absent: op_id "", operation
// DefaultOperation ("remote_call"), bytes_sent and bytes_received 0. An end
// whose error is present and non-empty marks a failure. For example:
//
//	{"schema":"pipetel.network/v1","kind":"start","task_id":"t-1","host":"db","port":5432,"time":"2024-05-01T12:00:00.5Z"}
//
// Encode writes the canonical form (fields in the order above, optional fields
// omitted when zero, time in UTC with nine fractional digits); Decode and
// Decoder accept any field order and whitespace and reject everything else
// with a *DecodeError wrapping ErrInvalidRecord (see Decoder for the rules and
// Code for the reasons).
//
// The JSON Schema files beside this package (event.v1.schema.json and
// network.v1.schema.json, served by JSONSchema) describe the same contract for
// non-Go producers; a test keeps them and the decoder's field tables equal.
package schemas
