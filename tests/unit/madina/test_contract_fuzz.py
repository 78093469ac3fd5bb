"""Fuzz every consumer's decode path with hypothesis-generated protobuf records.

Each consumer (operations ingest and rebuild, the KPI reader, the environment status feed, the
alert ledger, the environment processor) is driven with messages whose every field is drawn
from generated values including the extremes: timestamps at ±10^12 s and at the edges of what a
datetime holds, nanos out of range, NaN and infinities, huge strings, enum numbers no contract
defines, coordinates off the globe. The property: a record either raises InvalidRecord (the
caller dead-letters or skips it) or becomes a value the consumer can apply and serve; nothing
else is ever raised, and applied state stays servable.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from madina.bus.alert_events import AlertLedger
from madina.bus.codec import InvalidRecord, decode, standard_headers
from madina.bus.topics import ALERT_ACTIONS, ALERTS, KPIS, TopicSpec
from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.environment.v1 import observations_pb2
from services.environment.convert import status_from_event
from services.environment.domain.evaluator import EvaluatorConfig
from services.environment.domain.profiles import load_profiles, select_rules
from services.environment.domain.stations import load_stations
from services.environment.processor.station_stream import StoredState, apply_batch, apply_tick, decode_input
from services.environment.topics import AIR_QUALITY, NOISE, STATION_STATUS, STATION_TICKS, WATER_QUALITY
from services.operations.api.kpis import KpiBoard, check_kpi
from services.operations.store import AlertStore, migrate, record_from_message

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STATIONS = {s.id: s for s in load_stations()}
STATION_IDS = sorted(STATIONS)
RULES = select_rules(load_profiles(), ["who-2021", "who-water-2022", "who-noise-2018"])
NOW = datetime.now(UTC).replace(microsecond=0)
NOW_S = int(NOW.timestamp())

SECONDS = st.one_of(
    st.sampled_from([10**12, -(10**12), 253_402_300_799, 253_402_300_800, -62_135_596_800, -62_135_596_801,
                     0, 2**63 - 1, -(2**63), NOW_S, NOW_S - 600, NOW_S + 3600, NOW_S - 86_400 * 30]),
    st.integers(NOW_S - 86_400 * 10, NOW_S + 600),
    st.integers(-(2**63), 2**63 - 1),
)
NANOS = st.one_of(st.sampled_from([0, -1, 999_999_999, 1_000_000_000, -(2**31), 2**31 - 1]),
                  st.integers(-(2**31), 2**31 - 1))
DOUBLES = st.one_of(st.sampled_from([float("nan"), float("inf"), float("-inf"), 0.0, -0.0, 1e308, -1e308,
                                     90.0, -90.0, 180.0, 180.0001, 1999.0]),
                    st.floats(allow_nan=True, allow_infinity=True))
STRINGS = st.one_of(st.text(max_size=20), st.sampled_from(STATION_IDS),
                    st.builds(lambda n: "x" * n, st.sampled_from([1000, 100_000])))
INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1), FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1), FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1), FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return DOUBLES if kind == FieldDescriptor.TYPE_DOUBLE else DOUBLES.map(
            lambda v: v if abs(v) < 3e38 or v != v else float("inf"))
    if kind == FieldDescriptor.TYPE_STRING:
        return STRINGS
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=20)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_ENUM:
        known = [value.number for value in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-(2**31), 2**31 - 1))
    low, high = INT_RANGES[kind]
    return st.one_of(st.sampled_from([low, high, 0, 1]), st.integers(low, high))


@st.composite
def messages(draw: st.DrawFn, descriptor: Descriptor, depth: int = 0, sparse: bool = False) -> dict[str, Any]:
    """Field values for ``descriptor`` (as a dict for the message constructor); some fields unset.

    ``sparse`` sets few top-level fields: for overriding a valid record, so most examples get
    past validation and exercise what comes after it.
    """
    if descriptor.full_name in ("google.protobuf.Timestamp", "google.protobuf.Duration"):
        return {"seconds": draw(SECONDS), "nanos": draw(NANOS)}
    values: dict[str, Any] = {}
    for field in descriptor.fields:
        if draw(st.integers(0, 9 if sparse else 1)) != 0:
            continue
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            value_field = entry.fields_by_name["value"]
            inner = messages(value_field.message_type, depth + 1) if value_field.message_type else _scalar(value_field)
            values[field.name] = draw(st.dictionaries(STRINGS, inner, max_size=2))
        elif entry is not None:
            if depth > 3:
                continue
            inner = messages(entry, depth + 1)
            values[field.name] = draw(st.lists(inner, max_size=3)) if field.is_repeated else draw(inner)
        else:
            values[field.name] = draw(st.lists(_scalar(field), max_size=3)) if field.is_repeated else draw(
                _scalar(field))
    return values


def records(spec: TopicSpec, key_field: str | None = None) -> st.SearchStrategy[tuple[bytes, bytes, list]]:  # type: ignore[type-arg]
    """(key, value, headers) of a record on ``spec``: a generated message, keyed by its entity or not."""

    def build(fields: dict[str, Any], own_key: bool, typed: bool, other_key: str) -> tuple[bytes, bytes, list]:  # type: ignore[type-arg]
        message = spec.message_type(**fields)
        entity = _entity(message, key_field)
        key = (entity if own_key else other_key).encode()
        headers = standard_headers(spec, "fuzz") if typed else []
        return key, message.SerializeToString(), headers

    return st.builds(build, messages(spec.message_type.DESCRIPTOR), st.booleans(), st.booleans(), STRINGS)


def valid_alert_fields() -> dict[str, Any]:
    return {
        "alert_id": "fuzz-alert", "revision": 1, "domain": "environment", "category": "air-quality",
        "rule_id": "who-2021/pm25-24h", "severity": alerts_pb2.SEVERITY_MAJOR, "state": alerts_pb2.ALERT_STATE_RAISED,
        "source": {"domain": "environment", "kind": "station", "entity_id": STATION_IDS[0]},
        "observed_value": 40.0, "threshold_value": 15.0, "unit": "µg/m³",
        "raise_time": {"seconds": NOW_S}, "event_time": {"seconds": NOW_S},
        "location": {"latitude_deg": 33.6, "longitude_deg": -7.6}, "labels": {"window": "24h"},
    }


def valid_action_fields() -> dict[str, Any]:
    return {"action_id": "fuzz-action", "alert_id": "fuzz-alert", "actor": "operator", "text": "on it",
            "action_type": alerts_pb2.ALERT_ACTION_TYPE_COMMENT, "action_time": {"seconds": NOW_S}}


def near_valid(spec: TopicSpec, base: dict[str, Any]) -> st.SearchStrategy[tuple[bytes, bytes, list]]:  # type: ignore[type-arg]
    """Records of ``spec``: a valid message with a few fields replaced by generated values."""

    def build(overrides: dict[str, Any]) -> tuple[bytes, bytes, list]:  # type: ignore[type-arg]
        message = spec.message_type(**{**base, **overrides})
        return message.alert_id.encode(), message.SerializeToString(), standard_headers(spec, "fuzz")

    return st.builds(build, messages(spec.message_type.DESCRIPTOR, sparse=True))


def _entity(message: Message, path: str | None) -> str:
    value: Any = message
    for part in (path or "").split("."):
        if part:
            value = getattr(value, part)
    return value if isinstance(value, str) else ""


def _servable(payload: Any) -> None:
    """What the HTTP layer does with a response body: strict JSON, no NaN."""
    json.dumps(payload, allow_nan=False)


# -- operations: ingest, rebuild ---------------------------------------------------------------


def test_operations_ingest_applies_or_refuses_every_generated_alert_record(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fuzz.db'}"
    migrate(url)
    store = AlertStore(url)

    @FUZZ
    @given(st.one_of(
        records(ALERTS, "alert_id"), records(ALERT_ACTIONS, "alert_id"),
        near_valid(ALERTS, valid_alert_fields()), near_valid(ALERT_ACTIONS, valid_action_fields()),
    ))
    def run(record: tuple[bytes, bytes, list]) -> None:  # type: ignore[type-arg]
        key, value, headers = record
        for spec in (ALERTS, ALERT_ACTIONS):
            try:
                domain_record = record_from_message(decode(spec, value, headers, key))
            except InvalidRecord as error:
                event(f"refused: {str(error).split(':')[0][:40]}")
                continue
            event("applied to the store")
            store.apply_batch([domain_record])  # what the ingest handler does with what validated
            alert = store.get(domain_record.alert_id)
            if alert is not None:
                _servable(repr(alert))

    try:
        run()
    finally:
        store.close()


# -- compacted topics: the KPI board and the station status feed -------------------------------


@FUZZ
@given(records(KPIS))
def test_kpi_board_serves_only_what_converts(record: tuple[bytes, bytes, list]) -> None:  # type: ignore[type-arg]
    key, value, headers = record
    board = KpiBoard()
    try:
        kpi = decode(KPIS, value, headers, key)
        scope = kpi.entity.entity_id or f"{kpi.district.city_id}/{kpi.district.district_id}"
        board.put(f"{kpi.kpi_id}/{scope}", check_kpi(f"{kpi.kpi_id}/{scope}", kpi))
    except InvalidRecord:
        return
    _servable(board.indicators())


@FUZZ
@given(records(STATION_STATUS, "status.station.station_id"))
def test_station_status_feed_serves_only_what_converts(record: tuple[bytes, bytes, list]) -> None:  # type: ignore[type-arg]
    key, value, headers = record
    try:
        status = status_from_event(key.decode(), decode(STATION_STATUS, value, headers, key), STATIONS)
    except InvalidRecord:
        return
    _servable(MessageToDict(status, preserving_proto_field_name=True))


@FUZZ
@given(st.one_of(records(ALERTS, "alert_id"), near_valid(ALERTS, valid_alert_fields())))
def test_alert_ledger_reads_every_generated_record_or_skips_it(record: tuple[bytes, bytes, list]) -> None:  # type: ignore[type-arg]
    key, value, headers = record
    ledger = AlertLedger("environment")
    try:
        event = decode(ALERTS, value, headers, key)
    except InvalidRecord:
        return
    ledger.record(event.alert_id, event.revision)


# -- the environment processor -----------------------------------------------------------------


OBSERVED = {
    AIR_QUALITY.name: observations_pb2.AirQualityObserved,
    WATER_QUALITY.name: observations_pb2.WaterQualityObserved,
    NOISE.name: observations_pb2.NoiseObserved,
}


@st.composite
def station_batches(draw: st.DrawFn) -> tuple[TopicSpec, bytes, bytes, list]:  # type: ignore[type-arg]
    """A batch for a real station (so it gets past the key check) with generated observations."""
    spec = draw(st.sampled_from([AIR_QUALITY, WATER_QUALITY, NOISE]))
    station_id = draw(st.sampled_from(STATION_IDS))
    observed = OBSERVED[spec.name]
    items = draw(st.lists(messages(observed.DESCRIPTOR), min_size=1, max_size=4))
    batch = spec.message_type(station_id=station_id)
    for fields in items:
        fields["station_id"] = draw(st.sampled_from([station_id, fields.get("station_id", "")]))
        batch.observations.append(observed(**fields))
    return spec, station_id.encode(), batch.SerializeToString(), standard_headers(spec, "fuzz")


@FUZZ
@given(st.one_of(
    station_batches(),
    records(AIR_QUALITY, "station_id").map(lambda r: (AIR_QUALITY, *r)),
    records(STATION_TICKS, "station_id").map(lambda r: (STATION_TICKS, *r)),
))
def test_processor_applies_or_dead_letters_every_generated_record_and_keeps_its_clock(
    record: tuple[TopicSpec, bytes, bytes, list],  # type: ignore[type-arg]
) -> None:
    spec, key, value, headers = record
    try:
        decoded, station = decode_input(spec, key, value, headers, STATIONS)
    except InvalidRecord:
        return
    stored = StoredState.new(station.id)
    config = EvaluatorConfig()
    try:
        if spec is STATION_TICKS:
            apply_tick(stored, decoded, station, config, NOW)
        else:
            apply_batch(stored, decoded, station, RULES, config, NOW)
    except InvalidRecord:
        assert stored.to_dict() == StoredState.new(station.id).to_dict(), "a refused record changed the state"
        event("refused by the processor")
        return
    event("applied by the processor")
    newest = stored.evaluator.windows.max_event_time
    assert newest is None or newest <= NOW + config.event_time_bounds.max_future_skew
    assert newest is None or newest >= NOW - config.event_time_bounds.max_age
    assert StoredState.from_dict(json.loads(json.dumps(stored.to_dict(), allow_nan=False)), station.id)


@FUZZ
@given(st.sampled_from([AIR_QUALITY, WATER_QUALITY, NOISE, STATION_TICKS, ALERTS, ALERT_ACTIONS, KPIS,
                        STATION_STATUS]), st.binary(max_size=200), st.booleans())
def test_arbitrary_bytes_decode_or_are_invalid_records(spec: TopicSpec, value: bytes, typed: bool) -> None:
    headers = standard_headers(spec, "fuzz") if typed else []
    with contextlib.suppress(InvalidRecord):
        decode(spec, value, headers)


def test_generated_times_reach_the_extremes() -> None:
    # A guard on the generator itself: the property tests above are only as good as these values.
    assert datetime.min.replace(tzinfo=UTC) + timedelta(seconds=62_135_596_800) == datetime(1970, 1, 1, tzinfo=UTC)


@given(st.sampled_from([alerts_pb2.AlertEvent, alerts_pb2.AlertAction, observations_pb2.AirQualityObservedBatch,
                        KPIS.message_type, STATION_STATUS.message_type])
       .flatmap(lambda cls: st.builds(lambda fields: cls(**fields), messages(cls.DESCRIPTOR))))
@FUZZ
def test_the_fast_wire_check_agrees_with_the_walk_that_names_the_field(message: Message) -> None:
    from madina.contract import _raise_at_first_bad_value, _wire_values_ok

    try:
        _raise_at_first_bad_value(message, "")
    except InvalidRecord:
        event("refused")
        assert not _wire_values_ok(message)
    else:
        event("accepted")
        assert _wire_values_ok(message)
