"""Protobuf on the wire, with the standard headers every Madina record carries.

Works for any Kafka client: :func:`encode` / :func:`decode` deal in bytes, :class:`ProtobufCodec`
plugs the same into faust. Decoding checks the content-type header when present, so a record of
the wrong type is rejected instead of being misread as another message that happens to parse.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from faust.serializers.codecs import Codec
from google.protobuf.message import DecodeError, Message

from madina.bus.topics import TopicSpec

MessageT = TypeVar("MessageT", bound=Message)
Headers = list[tuple[str, bytes]]

HEADER_EVENT_ID = "madina-event-id"
HEADER_EVENT_TIME = "madina-event-time-ms"
HEADER_SOURCE = "madina-source"
HEADER_CONTENT_TYPE = "content-type"


class InvalidRecord(ValueError):
    """A record that cannot be processed; the message says why and goes to the dead-letter topic."""


def encode(message: Message) -> bytes:
    return message.SerializeToString()


def decode(spec: TopicSpec, value: bytes | None, headers: Iterable[tuple[str, bytes]] | None = None) -> Any:
    """Parse a record of ``spec``'s topic, or raise InvalidRecord saying what is wrong."""
    if value is None:
        raise InvalidRecord("record has no value (tombstone) where an event was expected")
    expected = spec.content_type
    for name, raw in headers or ():
        if name == HEADER_CONTENT_TYPE and raw and raw.decode("utf-8", "replace") != expected:
            raise InvalidRecord(f"content type {raw.decode('utf-8', 'replace')!r}, expected {expected!r}")
    message = spec.message_type()
    try:
        message.ParseFromString(value)
    except DecodeError as error:
        raise InvalidRecord(f"not a valid {spec.message_type.DESCRIPTOR.full_name}: {error}") from None
    return message


def standard_headers(spec: TopicSpec, source: str, event_time_ms: int | None = None) -> Headers:
    """Event id, event time, producing service and content type, as bytes headers."""
    return [
        (HEADER_EVENT_ID, uuid.uuid4().hex.encode()),
        (
            HEADER_EVENT_TIME,
            str(event_time_ms if event_time_ms is not None else int(time.time() * 1000)).encode(),
        ),
        (HEADER_SOURCE, source.encode()),
        (HEADER_CONTENT_TYPE, spec.content_type.encode()),
    ]


def header(headers: Sequence[tuple[str, bytes]] | None, name: str) -> bytes | None:
    for key, value in headers or ():
        if key == name:
            return value
    return None


class ProtobufCodec(Codec):
    """faust codec for one protobuf message type: ``app.topic(..., value_serializer=ProtobufCodec(T))``."""

    def __init__(self, message_type: type[Message], **kwargs: Any) -> None:
        self.message_type = message_type
        super().__init__(message_type=message_type, **kwargs)

    def _dumps(self, obj: Any) -> bytes:
        if not isinstance(obj, self.message_type):
            raise TypeError(f"expected {self.message_type.DESCRIPTOR.full_name}, got {type(obj).__name__}")
        return obj.SerializeToString()

    def _loads(self, s: bytes) -> Any:
        message = self.message_type()
        message.ParseFromString(s)
        return message
