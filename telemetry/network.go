package telemetry

import (
	"context"

	"github.com/pipetel/pipetel/schemas"
)

// Network records the start and end of a task's network operations (the
// Python SDK's NetworkTelemetry). Get one from Producer.Network. Its calls
// return errors as Logger's do.
type Network struct{ p *Producer }

// StartOperation records that task taskID started an operation against
// host:port. Options: WithOperation, WithOpID.
func (n *Network) StartOperation(ctx context.Context, taskID, host string, port int, opts ...OperationOption) error {
	o := operationOptions{operation: schemas.DefaultOperation}
	for _, opt := range opts {
		opt(&o)
	}
	return n.p.send(ctx, n.p.cfg.networkTopic, schemas.Record{
		Schema:    schemas.NetworkSchema,
		Kind:      schemas.KindStart,
		TaskID:    taskID,
		Time:      n.p.cfg.clock(),
		OpID:      o.opID,
		Host:      host,
		Port:      port,
		Operation: o.operation,
	})
}

// EndOperation records that task taskID's operation ended, having sent and
// received the given byte counts: failed with err.Error() when err is not
// nil. Pass the start's WithOpID to pair them; WithOperation is ignored.
func (n *Network) EndOperation(ctx context.Context, taskID string, bytesSent, bytesReceived int64, err error, opts ...OperationOption) error {
	var o operationOptions
	for _, opt := range opts {
		opt(&o)
	}
	return n.p.send(ctx, n.p.cfg.networkTopic, schemas.Record{
		Schema:        schemas.NetworkSchema,
		Kind:          schemas.KindEnd,
		TaskID:        taskID,
		Time:          n.p.cfg.clock(),
		OpID:          o.opID,
		BytesSent:     bytesSent,
		BytesReceived: bytesReceived,
		Error:         errorText(err),
	})
}
