"""The event bus: topic registry, protobuf codec with standard headers, producer, consumer, dead letters."""

from madina.bus.admin import ensure_topics, wait_for_broker
from madina.bus.codec import InvalidRecord, ProtobufCodec, decode, encode, header, standard_headers
from madina.bus.consumer import ConsumedEvent, EventConsumer
from madina.bus.producer import EventProducer
from madina.bus.topics import ALERT_ACTIONS, ALERTS, KPIS, REGISTRY, TopicRegistry, TopicSpec

__all__ = [
    "ALERTS",
    "ALERT_ACTIONS",
    "KPIS",
    "REGISTRY",
    "ConsumedEvent",
    "EventConsumer",
    "EventProducer",
    "InvalidRecord",
    "ProtobufCodec",
    "TopicRegistry",
    "TopicSpec",
    "decode",
    "encode",
    "ensure_topics",
    "header",
    "standard_headers",
    "wait_for_broker",
]
