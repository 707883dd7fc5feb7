package telemetry

import (
	"context"

	"github.com/pipetel/pipetel/schemas"
)

// Logger records the start, retries and end of pipeline events (the Python
// SDK's TelemetryLogger). Get one from Producer.Logger. Its calls return an
// error only when the record is not sent: invalid (wrapping
// schemas.ErrInvalidRecord), producer closed (ErrClosed), or ctx ended while
// the call waited; delivery errors go to the error handler and Flush.
type Logger struct{ p *Producer }

// StartEvent records that task taskID of event eventName started. It returns
// an error wrapping schemas.ErrInvalidRecord, and sends nothing, when the
// record is invalid (for example an empty taskID or eventName).
func (l *Logger) StartEvent(ctx context.Context, eventName, taskID string, opts ...EventOption) error {
	var o eventOptions
	for _, opt := range opts {
		opt(&o)
	}
	return l.p.send(ctx, l.p.cfg.eventsTopic, schemas.Record{
		Schema:     schemas.EventSchema,
		Kind:       schemas.KindStart,
		TaskID:     taskID,
		Time:       l.p.cfg.clock(),
		EventName:  eventName,
		PipelineID: o.pipelineID,
		ProcessID:  o.processID,
	})
}

// EndEvent records that task taskID ended: failed with err.Error() when err
// is not nil, completed otherwise.
func (l *Logger) EndEvent(ctx context.Context, taskID string, err error) error {
	return l.p.send(ctx, l.p.cfg.eventsTopic, schemas.Record{
		Schema: schemas.EventSchema,
		Kind:   schemas.KindEnd,
		TaskID: taskID,
		Time:   l.p.cfg.clock(),
		Error:  errorText(err),
	})
}

// RecordRetry records one retry of task taskID.
func (l *Logger) RecordRetry(ctx context.Context, taskID string) error {
	return l.p.send(ctx, l.p.cfg.eventsTopic, schemas.Record{
		Schema: schemas.EventSchema,
		Kind:   schemas.KindRetry,
		TaskID: taskID,
		Time:   l.p.cfg.clock(),
	})
}

func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
