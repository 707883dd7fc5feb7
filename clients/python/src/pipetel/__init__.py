"""pipetel: emit pipeline telemetry records to Kafka for pipetel, and read the
finished metrics from its query API.

The record contract is pipetel's v1 JSON (schemas/*.json in the repository);
the method names follow the telemetry module pipetel grew from.
"""

from .records import event_start, event_end, event_retry, network_start, network_end, RecordError
from .producer import Producer, DeliveryError
from .telemetry import TelemetryLogger, NetworkTelemetry
from .client import Client, APIError, AllMetrics

__all__ = [
    "Producer", "DeliveryError", "TelemetryLogger", "NetworkTelemetry", "Client", "APIError", "AllMetrics",
    "RecordError", "event_start", "event_end", "event_retry", "network_start", "network_end",
]
