"""JSON documents for the domain objects the store keeps in JSON columns.

Derived from the domain dataclasses field by field, so a field added to
:mod:`services.operations.domain.model` is stored with no code here (and a row written before it
existed reads back with the field's default). Enums are written by name and times as canonical
ISO-8601 UTC text (see :mod:`madina.alerts.timeutil`), so stored rows stay readable in ``psql``
and ``sqlite3`` and equal views always serialise identically (which the replay test relies on).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields, is_dataclass
from datetime import datetime
from enum import Enum
from functools import cache, partial
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from madina.alerts.timeutil import time_from_text, time_to_text
from services.operations.domain.model import AlertAction, AlertEvent, AlertView
from services.operations.domain.silences import Matcher

Document = dict[str, Any]
T = TypeVar("T")


def event_to_document(event: AlertEvent) -> Document:
    return _to_document(event)


def event_from_document(document: Mapping[str, Any]) -> AlertEvent:
    return _from_document(AlertEvent, document)


def action_to_document(action: AlertAction) -> Document:
    return _to_document(action)


def action_from_document(document: Mapping[str, Any]) -> AlertAction:
    return _from_document(AlertAction, document)


def view_to_document(view: AlertView) -> Document:
    """The view without ``silenced``, which is evaluated when read, never stored."""
    document = _to_document(view)
    del document["silenced"]
    return document


def view_from_document(document: Mapping[str, Any]) -> AlertView:
    return _from_document(AlertView, document)


Convert = Callable[[Any], Any]


def _to_document(value: Any) -> Document:
    """A domain dataclass as JSON: field by field, enums by name, times as text."""
    return {name: write(getattr(value, name)) for name, write, _ in _fields(type(value))}  # type: ignore[arg-type]


def _from_document(kind: type[T], document: Mapping[str, Any]) -> T:
    """The inverse of :func:`_to_document`; a field the document lacks (one added since it was
    written) takes its default."""
    return kind(**{name: read(document[name]) for name, _, read in _fields(kind) if name in document})  # type: ignore[arg-type]


@cache
def _fields(kind: type) -> tuple[tuple[str, Convert, Convert], ...]:
    """Each field's name and how to write and read it, worked out once per class from its types."""
    types = get_type_hints(kind)
    return tuple((item.name, *_converters(types[item.name])) for item in fields(kind) if item.init)


def _converters(hint: Any) -> tuple[Convert, Convert]:
    origin = get_origin(hint)
    if origin is Union or origin is UnionType:
        write, read = _converters(next(arg for arg in get_args(hint) if arg is not type(None)))
        return (lambda value: None if value is None else write(value)), (
            lambda value: None if value is None else read(value)
        )
    if origin is tuple:
        write, read = _converters(get_args(hint)[0])
        return (lambda value: [write(item) for item in value]), (lambda value: tuple(read(item) for item in value))
    if origin is not None:  # Mapping[str, str]
        return dict, dict
    if isinstance(hint, type) and issubclass(hint, Enum):
        return (lambda value: value.name), hint.__getitem__
    if hint is datetime:
        return time_to_text, _time
    if is_dataclass(hint):
        return _to_document, partial(_from_document, hint)  # type: ignore[arg-type]
    return _same, _same


def _same(value: Any) -> Any:
    return value


def matchers_to_document(matchers: tuple[Matcher, ...]) -> list[Document]:
    return [{"name": matcher.name, "op": str(matcher.op), "value": matcher.value} for matcher in matchers]


def matchers_from_document(document: list[Mapping[str, Any]]) -> tuple[Matcher, ...]:
    # Leniently: a pattern stored before RE2 must not make its silence (and every read) fail.
    return tuple(Matcher.from_storage(item["name"], item["op"], item["value"]) for item in document)


def _time(text: str) -> datetime:
    moment = time_from_text(text)
    if moment is None:
        raise ValueError("a required time is missing from a stored document")
    return moment
