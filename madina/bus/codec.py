"""Protobuf on the wire, with the standard headers every Madina record carries.

Works for any Kafka client: :func:`encode` / :func:`decode` deal in bytes, :class:`ProtobufCodec`
plugs the same into faust. Decoding checks the content-type header when present, so a record of
the wrong type is rejected instead of being misread as another message that happens to parse.
Without the header (every Madina producer sets it, a hand-made record may not) the bytes alone
must convince: fields the type does not define, or a key that is not the entity the message is
about, mean it is some other message. Records of signed topics must carry the platform's
signature when a key is configured (:mod:`madina.bus.signing`). Every decoded record also passes
:func:`madina.contract.check_wire_values` (timestamps a datetime can hold, finite numbers), so no
consumer meets such a value later, outside its dead-letter path.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from faust.serializers.codecs import Codec
from google.protobuf.message import DecodeError, Message

from madina.bus.signing import signature_problem
from madina.bus.topics import TopicSpec
from madina.contract import InvalidRecord, check_wire_values, unknown_fields

MessageT = TypeVar("MessageT", bound=Message)
Headers = list[tuple[str, bytes]]

HEADER_EVENT_ID = "madina-event-id"
HEADER_EVENT_TIME = "madina-event-time-ms"
HEADER_SOURCE = "madina-source"
HEADER_CONTENT_TYPE = "content-type"

__all__ = ["InvalidRecord", "ProtobufCodec", "decode", "encode", "header", "standard_headers"]


def encode(message: Message) -> bytes:
    return message.SerializeToString()


def decode(
    spec: TopicSpec,
    value: bytes | None,
    headers: Iterable[tuple[str, bytes]] | None = None,
    key: bytes | None = None,
    *,
    require_type: bool = False,
) -> Any:
    """Parse a record of ``spec``'s topic, or raise InvalidRecord saying what is wrong.

    ``key``, when given, must be the entity the message is about (``spec.key`` names its field).
    ``require_type`` refuses a record without the content-type header, for topics whose message
    shares its wire layout with another topic's (then no check of the bytes can tell them apart).
    """
    if value is None:
        raise InvalidRecord("record has no value (tombstone) where an event was expected")
    headers = list(headers or ())
    forged = signature_problem(spec.name, key, value, headers)
    if forged is not None:
        raise InvalidRecord(forged)
    expected = _content_types.get(spec.message_type)
    if expected is None:
        expected = _content_types[spec.message_type] = spec.content_type.encode()
    typed = False
    for name, raw in headers:
        if name == HEADER_CONTENT_TYPE and raw:
            if raw != expected:
                raise InvalidRecord(f"content type {raw.decode('utf-8', 'replace')!r}, expected {spec.content_type!r}")
            typed = True
    message = spec.message_type()
    try:
        message.ParseFromString(value)
    except DecodeError as error:
        raise InvalidRecord(f"not a valid {spec.message_type.DESCRIPTOR.full_name}: {error}") from None
    if not typed and require_type:
        raise InvalidRecord(
            f"no content-type header: {spec.message_type.DESCRIPTOR.full_name} cannot be told from "
            "other messages of the same layout without it"
        )
    if not typed:
        # With the header, unknown fields are a newer producer's additions; without it, they are
        # the sign of another message type that happened to parse.
        unknown = unknown_fields(message)
        if unknown:
            raise InvalidRecord(
                f"no content-type header and fields {', '.join(unknown[:5])} are not in "
                f"{spec.message_type.DESCRIPTOR.full_name}: not a record of this topic"
            )
    check_wire_values(message)
    if key is not None:
        check_key(spec, message, key)
    return message


def check_key(spec: TopicSpec, message: Message, key: bytes) -> None:
    """The record's key must be the id its message carries (for topics keyed by a plain field)."""
    if spec.key not in message.DESCRIPTOR.fields_by_name:
        return  # a composite key (kpis.v1): its reader checks it
    entity = getattr(message, spec.key)
    if not entity or key.decode("utf-8", "replace") != entity:
        raise InvalidRecord(f"key {key!r} does not match {spec.key} {entity!r}")


def standard_headers(spec: TopicSpec, source: str, event_time_ms: int | None = None) -> Headers:
    """Event id, event time, producing service and content type, as bytes headers."""
    fixed = _fixed_headers.get((spec.message_type, source))
    if fixed is None:
        fixed = _fixed_headers[spec.message_type, source] = (
            (HEADER_SOURCE, source.encode()), (HEADER_CONTENT_TYPE, spec.content_type.encode()))
    return [
        # 128 random bits, as in a uuid4, without the uuid module's cost (~10x): every record
        # sent pays it, and only uniqueness is needed of it.
        (HEADER_EVENT_ID, os.urandom(16).hex().encode()),
        (HEADER_EVENT_TIME, str(event_time_ms if event_time_ms is not None else int(time.time() * 1000)).encode()),
        *fixed,
    ]


# The content type of each message type (its full name), and per (message type, source) the source
# and content-type headers: the same bytes for every record.
_content_types: dict[type[Message], bytes] = {}
_fixed_headers: dict[tuple[type[Message], str], tuple[tuple[str, bytes], tuple[str, bytes]]] = {}


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
        check_wire_values(message)
        return message
