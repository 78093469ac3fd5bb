"""Checks on what clients send, shared by every HTTP and gRPC boundary of every service.

A value a client got wrong must come back as a 4xx / ``INVALID_ARGUMENT`` naming the field, never
as a 500 or ``UNKNOWN`` carrying a Python exception. The traps these helpers close:

* **Times.** ``0001-01-01T00:00:00+14:00`` is a valid RFC 3339 string, but converting it to UTC
  overflows ``datetime``; a protobuf ``Timestamp`` may hold seconds ``ToDatetime`` cannot represent.
  Every time a client sends is converted to UTC here and must lie in [:data:`EARLIEST`,
  :data:`LATEST`): before 1970 it has no epoch-millisecond header, and nothing in a city's
  alerting plans a millennium ahead.
* **Numbers.** NaN and infinities are not JSON: the dashboard drops an SSE event carrying ``NaN``,
  and a JSON response holding one fails to encode. What goes out as JSON uses :func:`finite_or_none`;
  what comes in over gRPC is checked by ``madina.grpc.errors.check_request`` (``madina.contract``).
* **Echo.** An error message quotes what the client sent only through :func:`echo`, which bounds
  it: a 1 MB id must not come back in a 1 MB error.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated

from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import AfterValidator, AwareDatetime

from madina.contract import InvalidRecord, time_from_pb

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)
ECHO_CHARS = 64


class InvalidInput(ValueError):
    """A field a client got wrong; the message names the field and is short (input only via echo)."""


def echo(value: str, limit: int = ECHO_CHARS) -> str:
    """``value`` quoted for an error message, cut to ``limit`` characters with the length it had."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"


def utc_in_range(moment: datetime, field: str = "time") -> datetime:
    """``moment`` (timezone-aware) in UTC; InvalidInput if it is outside [EARLIEST, LATEST)."""
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise InvalidInput(f"{field}: must be from {_text(EARLIEST)} to before {_text(LATEST)}")
    return utc


def _utc_for_pydantic(moment: datetime) -> datetime:
    # pydantic prefixes the field's location itself; the message must not repeat it.
    try:
        return utc_in_range(moment)
    except InvalidInput as error:
        raise ValueError(str(error).removeprefix("time: ")) from None


UtcTime = Annotated[AwareDatetime, AfterValidator(_utc_for_pydantic)]
"""An RFC 3339 time with offset, as a pydantic field or query type: converted to UTC, range-checked."""


def time_from_request(stamp: Timestamp, field: str) -> datetime:
    """A request's protobuf ``Timestamp`` as a UTC datetime in [EARLIEST, LATEST), else InvalidInput."""
    try:
        moment = time_from_pb(stamp, field)
    except InvalidRecord:
        moment = None
    if moment is None or not EARLIEST <= moment < LATEST:
        raise InvalidInput(f"{field}: must be from {_text(EARLIEST)} to before {_text(LATEST)}")
    return moment


def finite_or_none(value: float) -> float | None:
    """For JSON output: a non-finite number has no JSON form, so it is written as null."""
    return value if math.isfinite(value) else None


def _text(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
