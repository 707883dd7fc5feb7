// Package schemas is pipetel's record contract: the JSON records that pipelines
// write to Kafka (version 1, one JSON object per record value, key = task_id),
// the metrics that pipetel derives from them, and a strict decoder whose errors
// name the field, the value and what was expected.
//
// The JSON Schema files beside this package (event.v1.schema.json and
// network.v1.schema.json) describe the same contract for non-Go producers.
package schemas
