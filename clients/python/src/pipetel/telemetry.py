"""TelemetryLogger and NetworkTelemetry: the telemetry module's methods,
emitting pipetel records instead of keeping metrics in the process."""

import contextlib

from . import records


class TelemetryLogger:
    """Event executions: start_event, end_event, record_retry. get_metrics
    reads the finished (or running) metric back when a Client is given."""

    def __init__(self, producer, pipeline_id=None, client=None):
        self._p, self.pipeline_id, self._client = producer, pipeline_id, client

    def start_event(self, event_name, task_id, process_id=None, pipeline_id=None):
        self._p.send(records.event_start(task_id, event_name, pipeline_id=pipeline_id or self.pipeline_id,
                                         process_id=process_id))

    def end_event(self, task_id, error=None):
        self._p.send(records.event_end(task_id, error=error))

    def record_retry(self, task_id):
        self._p.send(records.event_retry(task_id))

    def get_metrics(self, task_id):
        if self._client is None:
            raise RuntimeError("get_metrics needs TelemetryLogger(producer, client=Client(url))")
        return self._client.get_metrics(task_id)

    @contextlib.contextmanager
    def event(self, event_name, task_id, process_id=None, pipeline_id=None):
        """Starts the event, ends it when the block ends; an exception is
        recorded as the error and raised again."""
        self.start_event(event_name, task_id, process_id=process_id, pipeline_id=pipeline_id)
        try:
            yield self
        except BaseException as e:
            self.end_event(task_id, error=f"{type(e).__name__}: {e}")
            raise
        self.end_event(task_id)


class _Operation:
    """What an operation block reports at its end."""

    def __init__(self):
        self.bytes_sent = 0
        self.bytes_received = 0


class NetworkTelemetry:
    """Network operations: start_operation, end_operation. The reads need a Client."""

    def __init__(self, producer, client=None):
        self._p, self._client = producer, client

    def start_operation(self, task_id, host, port, operation="remote_call", op_id=None):
        self._p.send(records.network_start(task_id, host, port, operation=operation, op_id=op_id))

    def end_operation(self, task_id, bytes_sent=0, bytes_received=0, error=None, op_id=None):
        self._p.send(records.network_end(task_id, op_id=op_id, bytes_sent=bytes_sent,
                                         bytes_received=bytes_received, error=error))

    def _need_client(self):
        if self._client is None:
            raise RuntimeError("reads need NetworkTelemetry(producer, client=Client(url))")
        return self._client

    def get_metrics(self, task_id, op_id=None):
        """The task's operation op_id ("" for the one without an op_id), or with op_id None the list of all of
        its operations."""
        return self._need_client().get_network_metrics(task_id, op_id=op_id)

    def get_failed_operations(self):
        return self._need_client().get_failed_network_ops()

    def get_slow_operations(self, threshold_seconds=1.0):
        return self._need_client().get_slow_network_ops(threshold_seconds=threshold_seconds)

    @contextlib.contextmanager
    def operation(self, task_id, host, port, operation="remote_call", op_id=None):
        """Starts the operation, ends it with the block's byte counts; an
        exception is recorded as the error and raised again."""
        self.start_operation(task_id, host, port, operation=operation, op_id=op_id)
        op = _Operation()
        try:
            yield op
        except BaseException as e:
            self.end_operation(task_id, op.bytes_sent, op.bytes_received, error=f"{type(e).__name__}: {e}", op_id=op_id)
            raise
        self.end_operation(task_id, op.bytes_sent, op.bytes_received, op_id=op_id)
