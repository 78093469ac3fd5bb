"""The gateway's own topic: the dead letters of MQTT messages it could not ingest.

Accepted readings go to each domain's own topics, through that domain's publisher. A message
the gateway refuses (unknown topic or device, a payload that does not decode, a value the
domain's checks reject) goes to ``devices.mqtt-messages.v1.dlq`` with its original bytes as the
value, the MQTT topic as the key, and the reason in ``madina-dlq-reason``. The base topic carries
the raw MQTT payload (``google.protobuf.BytesValue``) for a deployment that wants to archive
every message; the gateway itself writes only the dead letters.
"""

from __future__ import annotations

from google.protobuf import wrappers_pb2

from madina.bus.topics import DAY_MS, TopicSpec

MQTT_MESSAGES = TopicSpec(
    name="devices.mqtt-messages.v1",
    message_type=wrappers_pb2.BytesValue,
    key="mqtt_topic",
    description="Raw MQTT device payloads, keyed by MQTT topic; its .dlq twin holds the ones the gateway refused.",
    retention_ms=7 * DAY_MS,
)
HEADER_MQTT_TOPIC = "madina-mqtt-topic"

ALL = [MQTT_MESSAGES]
