"""Poison records: each class of record that once stopped a consumer or corrupted state is refused.

Every consumer decodes through ``madina.bus.codec.decode`` and converts through
``madina.contract``; these tests hold each converter to turning a bad record into InvalidRecord
(dead-lettered or skipped by the caller) instead of raising anything else or accepting it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from google.protobuf.json_format import MessageToDict

from madina.bus.codec import InvalidRecord, decode, standard_headers
from madina.bus.reader import _feed
from madina.bus.topics import ALERTS, KPIS
from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.environment.v1 import observations_pb2, station_pb2
from madina_proto.kpis.v1 import kpis_pb2
from services.environment.api.publisher import ObservationRejected, check_observation
from services.environment.convert import status_from_event
from services.environment.domain.evaluator import EvaluatorConfig, RejectCode
from services.environment.domain.measurands import Observation, StationKind
from services.environment.domain.profiles import load_profiles, select_rules
from services.environment.domain.stations import load_stations
from services.environment.processor.station_stream import StoredState, apply_batch, apply_tick, decode_input
from services.environment.topics import AIR_QUALITY, NOISE, STATION_STATUS, STATION_TICKS
from services.operations.api.kpis import KpiBoard
from services.operations.store import record_from_message

FAR_FUTURE_S = 10**12
STATIONS = {s.id: s for s in load_stations()}
AIR = "cas-air-ain-sebaa"
RULES = select_rules(load_profiles(), ["who-2021", "who-water-2022", "who-noise-2018"])


def _alert(**fields: object) -> alerts_pb2.AlertEvent:
    values: dict[str, object] = {
        "alert_id": "a-1", "revision": 1, "domain": "environment", "category": "air-quality", "rule_id": "r",
        "severity": alerts_pb2.SEVERITY_MAJOR, "state": alerts_pb2.ALERT_STATE_RAISED, **fields,
    }
    event = alerts_pb2.AlertEvent(**values)  # type: ignore[arg-type]
    if not event.HasField("event_time"):
        event.event_time.seconds = 1_700_000_000
    return event


def _record(spec: object, key: str, message: object, headers: bool = True) -> SimpleNamespace:
    return SimpleNamespace(
        key=key.encode(), value=message.SerializeToString(), offset=0,  # type: ignore[attr-defined]
        headers=standard_headers(spec, "test") if headers else [],  # type: ignore[arg-type]
    )


# -- timestamps no datetime holds --------------------------------------------------------------


def test_alert_event_dated_beyond_any_datetime_is_an_invalid_record_not_a_crash() -> None:
    event = _alert()
    event.event_time.seconds = FAR_FUTURE_S
    with pytest.raises(InvalidRecord, match="event_time"):
        record_from_message(event)
    with pytest.raises(InvalidRecord, match="event_time"):
        decode(ALERTS, event.SerializeToString(), standard_headers(ALERTS, "test"), b"a-1")


@pytest.mark.parametrize("seconds, nanos", [(-FAR_FUTURE_S, 0), (0, -1), (0, 1_000_000_000)])
def test_timestamps_out_of_range_or_with_bad_nanos_are_refused(seconds: int, nanos: int) -> None:
    event = _alert()
    event.raise_time.seconds, event.raise_time.nanos = seconds, nanos
    with pytest.raises(InvalidRecord, match="raise_time"):
        record_from_message(event)


def test_alert_with_nan_value_unknown_enum_or_point_off_the_globe_is_refused() -> None:
    with pytest.raises(InvalidRecord, match="observed_value"):
        record_from_message(_alert(observed_value=float("nan")))
    with pytest.raises(InvalidRecord, match="severity"):
        record_from_message(_alert(severity=99))  # type: ignore[arg-type]
    off_globe = _alert()
    off_globe.location.latitude_deg = 123.0
    with pytest.raises(InvalidRecord, match="latitude"):
        record_from_message(off_globe)


def test_text_with_a_nul_character_is_refused_before_a_store_retries_it_forever() -> None:
    event = _alert(message="pm\x00", labels={"station_name": "a\x00b"})
    with pytest.raises(InvalidRecord, match="NUL"):
        decode(ALERTS, event.SerializeToString(), standard_headers(ALERTS, "test"), b"a-1")


def test_action_dated_beyond_any_datetime_is_refused() -> None:
    action = alerts_pb2.AlertAction(action_id="x", alert_id="a-1", action_type=alerts_pb2.ALERT_ACTION_TYPE_COMMENT)
    action.action_time.seconds = FAR_FUTURE_S
    with pytest.raises(InvalidRecord, match="action_time"):
        record_from_message(action)


# -- compacted topics: skipped by readers, never served ---------------------------------------


def _feed_kpi(board: KpiBoard, key: str, kpi: kpis_pb2.KpiObserved) -> None:
    from services.operations.api.kpis import check_kpi

    def on_kpi(k: str, message: kpis_pb2.KpiObserved | None) -> None:
        if message is not None:
            board.put(k, check_kpi(k, message))

    _feed(KPIS, _record(KPIS, key, kpi), on_kpi)


def test_kpi_with_an_impossible_time_is_skipped_and_the_last_good_value_is_served() -> None:
    board = KpiBoard()
    good = kpis_pb2.KpiObserved(domain="environment", kpi_id="aqi", value=42.0)
    good.entity.entity_id = AIR
    good.observe_time.seconds = 1_700_000_000
    _feed_kpi(board, f"aqi/{AIR}", good)
    bad = kpis_pb2.KpiObserved()
    bad.CopyFrom(good)
    bad.observe_time.seconds = FAR_FUTURE_S
    _feed_kpi(board, f"aqi/{AIR}", bad)
    nan = kpis_pb2.KpiObserved()
    nan.CopyFrom(good)
    nan.value = float("nan")
    _feed_kpi(board, f"aqi/{AIR}", nan)
    other_key = kpis_pb2.KpiObserved()
    other_key.CopyFrom(good)
    other_key.value = 500.0
    _feed_kpi(board, "aqi/some-other-station", other_key)

    rows = board.indicators()
    json.dumps(rows, allow_nan=False)  # what the HTTP layer does with it
    assert [row["value"] for row in rows] == [42.0]


def test_status_record_of_an_unknown_station_or_under_another_key_is_refused() -> None:
    event = station_pb2.StationStatusChanged()
    event.status.station.station_id = AIR
    assert status_from_event(AIR, event, STATIONS) is event.status
    with pytest.raises(InvalidRecord, match="does not match"):
        status_from_event("cas-water-ain-chock", event, STATIONS)
    event.status.station.station_id = "nowhere"
    with pytest.raises(InvalidRecord, match="unknown station"):
        status_from_event("nowhere", event, STATIONS)


def test_status_with_an_impossible_time_never_reaches_the_served_statuses() -> None:
    event = station_pb2.StationStatusChanged()
    event.status.station.station_id = AIR
    event.status.last_observe_time.seconds = FAR_FUTURE_S
    served: dict[str, object] = {}

    def on_status(key: str, message: station_pb2.StationStatusChanged | None) -> None:
        status = status_from_event(key, message, STATIONS)  # type: ignore[arg-type]
        served[key] = MessageToDict(status)

    _feed(STATION_STATUS, _record(STATION_STATUS, AIR, event), on_status)
    assert served == {}


# -- wrong message type ------------------------------------------------------------------------


def test_headerless_record_of_another_type_is_refused_when_its_fields_do_not_fit() -> None:
    alert = _alert()
    with pytest.raises(InvalidRecord, match="no content-type header"):
        decode(AIR_QUALITY, alert.SerializeToString(), [], alert.alert_id.encode())


def test_record_with_another_types_content_type_is_refused() -> None:
    batch = observations_pb2.NoiseObservedBatch(station_id=AIR, observations=[
        observations_pb2.NoiseObserved(station_id=AIR, laeq_db=150.0)])
    with pytest.raises(InvalidRecord, match="content type"):
        decode_input(AIR_QUALITY, AIR.encode(), batch.SerializeToString(), standard_headers(NOISE, "x"), STATIONS)


def test_headerless_noise_batch_on_the_air_topic_never_becomes_an_air_reading() -> None:
    # Noise and air batches share their wire layout: LAeq would read as PM2.5 at a station with both.
    both = next(s.id for s in STATIONS.values() if {StationKind.AIR, StationKind.NOISE} <= set(s.kinds))
    batch = observations_pb2.NoiseObservedBatch(station_id=both, observations=[
        observations_pb2.NoiseObserved(station_id=both, laeq_db=150.0)])
    batch.observations[0].observe_time.FromDatetime(datetime.now(UTC))
    with pytest.raises(InvalidRecord, match="no content-type header"):
        decode_input(AIR_QUALITY, both.encode(), batch.SerializeToString(), [], STATIONS)


def test_key_that_is_not_the_entity_is_refused() -> None:
    alert = _alert()
    with pytest.raises(InvalidRecord, match="key"):
        decode(ALERTS, alert.SerializeToString(), [], b"another-alert")


# -- event times against the clock -------------------------------------------------------------


def _air_batch(*moments: datetime, pm25: float = 10.0) -> observations_pb2.AirQualityObservedBatch:
    batch = observations_pb2.AirQualityObservedBatch(station_id=AIR)
    for moment in moments:
        observed = batch.observations.add(station_id=AIR, pm25_ugm3=pm25)
        observed.observe_time.FromDatetime(moment)
    return batch


def test_one_reading_dated_year_9000_does_not_move_the_station_clock() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    station, config, stored = STATIONS[AIR], EvaluatorConfig(), StoredState.new(AIR)
    outputs = apply_batch(stored, _air_batch(datetime(9000, 1, 1, tzinfo=UTC)), station, RULES, config, now)
    assert [r.code for r in outputs.rejected] == [RejectCode.OUT_OF_BOUNDS]
    assert "in the future" in outputs.rejected[0].detail
    later = apply_batch(stored, _air_batch(now, pm25=400.0), station, RULES, config, now)
    assert not later.rejected
    assert later.alerts, "a real breach after the forged reading still alerts"


@pytest.mark.parametrize("year", [1, 1900, 1970])
def test_reading_from_long_ago_is_refused_by_the_processor(year: int) -> None:
    now = datetime.now(UTC)
    outputs = apply_batch(StoredState.new(AIR), _air_batch(datetime(year, 1, 2, tzinfo=UTC)), STATIONS[AIR],
                          RULES, EvaluatorConfig(), now)
    assert [r.code for r in outputs.rejected] == [RejectCode.OUT_OF_BOUNDS]
    assert "too old" in outputs.rejected[0].detail


def test_forged_tick_far_in_the_future_is_refused_before_it_touches_the_state() -> None:
    now = datetime.now(UTC)
    tick = station_pb2.StationClockTick(station_id=AIR)
    tick.tick_time.FromDatetime(datetime(8999, 1, 1, tzinfo=UTC))
    stored = StoredState.new(AIR)
    before = stored.to_dict()
    with pytest.raises(InvalidRecord, match="tick_time"):
        apply_tick(stored, tick, STATIONS[AIR], EvaluatorConfig(), now)
    assert stored.to_dict() == before
    unrepresentable = station_pb2.StationClockTick(station_id=AIR)
    unrepresentable.tick_time.seconds = FAR_FUTURE_S
    with pytest.raises(InvalidRecord, match="tick_time"):
        decode_input(STATION_TICKS, AIR.encode(), unrepresentable.SerializeToString(),
                     standard_headers(STATION_TICKS, "test"), STATIONS)


@pytest.mark.parametrize("observe_time", [
    datetime(1, 1, 1, tzinfo=UTC), datetime(1900, 1, 1, tzinfo=UTC), datetime(1970, 1, 1, tzinfo=UTC),
    datetime(9000, 1, 1, tzinfo=UTC),
])
def test_api_refuses_what_the_processor_would_drop_for_its_time(observe_time: datetime) -> None:
    now = datetime.now(UTC)
    observation = Observation(AIR, observe_time, StationKind.AIR, {"pm25_ugm3": 10.0})
    with pytest.raises(ObservationRejected, match="observe_time") as refused:
        check_observation(observation, STATIONS, "", now)
    dropped = apply_batch(StoredState.new(AIR), _air_batch(observe_time), STATIONS[AIR], RULES,
                          EvaluatorConfig(), now).rejected
    assert dropped and dropped[0].detail.split(": ", 1)[1] in str(refused.value)


def test_api_and_processor_both_accept_a_reading_within_the_bounds() -> None:
    now = datetime.now(UTC)
    moment = now - timedelta(days=2)
    check_observation(Observation(AIR, moment, StationKind.AIR, {"pm25_ugm3": 10.0}), STATIONS, "", now)
    assert not apply_batch(StoredState.new(AIR), _air_batch(moment), STATIONS[AIR], RULES,
                           EvaluatorConfig(), now).rejected
