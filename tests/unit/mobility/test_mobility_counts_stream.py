"""The processor's step for cards, routes' ridership and car parks (no broker): what each record publishes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from madina.auth import write_credentials
from madina.bus.codec import standard_headers
from madina.bus.topics import KPIS
from madina.contract import InvalidRecord
from madina.geo import load_cities
from madina.streams.entities import EntityRecord, decode_entity_record
from madina_proto.alerts.v1 import alerts_pb2
from services.mobility.api.main import build_runtime
from services.mobility.convert import parking_to_wire, ridership_counted, validation_to_wire
from services.mobility.domain.avl import PathIndex
from services.mobility.domain.evaluator import MobilityConfig
from services.mobility.domain.gtfs import Schedule
from services.mobility.domain.parking import ParkingObservation, ParkingPolicy, load_car_parks
from services.mobility.domain.tickets import RouteRidership, Validation, ridership
from services.mobility.processor.counts_stream import (
    CountsConfig,
    RetiredStopCounts,
    StoredCarPark,
    Unseen,
    entity_from_dict,
    entity_to_dict,
    mobility_entity_of,
    mobility_step,
)
from services.mobility.processor.route_stream import StoredRoute, route_step, tick_message
from services.mobility.settings import MobilitySettings
from services.mobility.topics import (
    CAR_PARK_STATUS,
    PARKING_OCCUPANCY,
    RIDERSHIP,
    RIDERSHIP_VALIDATIONS,
    ROUTE_TICKS,
    TICKET_VALIDATIONS,
)
from services.operations.api.kpis import check_kpi

NOW = datetime(2026, 11, 26, 8, 20, tzinfo=UTC)
CARD = "a1" * 32


def _step(schedule: Schedule, **config: object):  # type: ignore[no-untyped-def]
    route = route_step(schedule, PathIndex(schedule), MobilityConfig())
    return mobility_step(route, schedule, load_car_parks(), load_cities(), CountsConfig(**config))  # type: ignore[arg-type]


def _validation(vid: str, vehicle: str, route: str, stop: str, lat: float, lon: float, minutes: float) -> Validation:
    return Validation(vid, CARD, vehicle, route, lat, lon, NOW + timedelta(minutes=minutes), stop)


def _run(step, state, spec, value):  # type: ignore[no-untyped-def]
    entity = mobility_entity_of(spec, value)
    result = step(state if state is not None else Unseen(entity), EntityRecord(entity, spec, value, NOW))
    return entity, result


def test_card_step_forwards_new_validations_keyed_by_their_routes_ridership_and_raises_fraud_once(
    schedule: Schedule,
) -> None:
    step = _step(schedule)
    first = validation_to_wire(_validation("v1", "BK-E01", "BK-1", "BK-HH1", 34.9335, -2.3360, 0))
    entity, result = _run(step, None, TICKET_VALIDATIONS, first)
    assert entity == CARD and not result.alerts
    assert [(spec, key) for spec, key, _ in result.records] == [(RIDERSHIP_VALIDATIONS, "ridership/BK-1")]
    _, retry = _run(step, result.state, TICKET_VALIDATIONS, first)
    assert not retry.records and not retry.alerts
    clone = validation_to_wire(_validation("v2", "CA-T07", "CA-T1", "", 33.5990, -7.6090, 5))
    _, fraud = _run(step, retry.state, TICKET_VALIDATIONS, clone)
    assert [a.rule_id for a in fraud.alerts] == ["ticket-fraud"]
    assert fraud.alerts[0].state == alerts_pb2.ALERT_STATE_RAISED
    assert "BK-E01" in fraud.alerts[0].message and "CA-T07" in fraud.alerts[0].message
    assert entity_from_dict(entity_to_dict(fraud.state), CARD) == fraud.state


def _count(step, state, validations):  # type: ignore[no-untyped-def]
    """Run ``validations`` through the route's ridership step: (its entity, state, every record published)."""
    records = []
    for validation in validations:
        entity, result = _run(step, state, RIDERSHIP_VALIDATIONS, validation_to_wire(validation))
        state = result.state
        records += result.records
        assert not result.alerts and all(spec in (RIDERSHIP, KPIS) for spec, _, _ in result.records)
    return entity, state, records


def _totals(records) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """The latest value per key, as the compacted topics keep them."""
    return {key: msg.validations_count if spec is RIDERSHIP else msg.value for spec, key, msg in records}


def test_route_ridership_counts_each_validation_once_per_local_hour_at_its_stop_and_for_the_route(
    schedule: Schedule,
) -> None:
    step = _step(schedule)
    validations = [_validation(vid, "BK-E01", "BK-1", stop, 34.9335, -2.3360, minutes) for vid, stop, minutes in [
        ("a", "BK-HH1", 0), ("b", "BK-HH2", 10), ("a", "BK-HH1", 11),  # "a" again: a replayed card step
        ("c", "BK-HH1", 39), ("d", "BK-HH2", 45), ("e", "BK-HH2", 50)]]
    entity, state, records = _count(step, None, validations)
    # 08:20 UTC is 09:20 in Africa/Casablanca (UTC+1): 08:00 local starts at 08:00 UTC; 09:05 is the next hour.
    eight, nine = "2026-11-26T08:00:00+00:00", "2026-11-26T09:00:00+00:00"
    assert entity == "ridership/BK-1"
    assert [(key, msg.validations_count) for spec, key, msg in records if spec is RIDERSHIP] == [
        (f"ridership/BK-1/BK-HH1/{eight}", 1), (f"ridership/BK-1/BK-HH2/{eight}", 1),
        (f"ridership/BK-1/BK-HH1/{eight}", 2), (f"ridership/BK-1/BK-HH2/{nine}", 1),
        (f"ridership/BK-1/BK-HH2/{nine}", 2)]
    assert [(key, msg.value) for spec, key, msg in records if spec is KPIS and key == "ridership/BK-1"] == [
        ("ridership/BK-1", 1), ("ridership/BK-1", 2), ("ridership/BK-1", 3), ("ridership/BK-1", 1),
        ("ridership/BK-1", 2)]
    assert isinstance(state, RouteRidership)
    assert entity_from_dict(entity_to_dict(state), entity) == state


def test_ridership_kpis_one_per_route_and_one_per_stop_show_their_newest_hour(schedule: Schedule) -> None:
    # kpis.v1 is compacted and never deleted: a key per hour would grow it forever. The hourly
    # history is on mobility.ridership.v1; a KPI is its stop's or its route's newest hour, the hour in its time.
    step = _step(schedule)
    validations = [_validation(vid, "BK-E01", "BK-1", stop, 34.9335, -2.3360, minutes) for vid, stop, minutes in [
        ("a", "BK-HH1", 0), ("b", "BK-HH1", 45), ("c", "BK-HH1", 10),  # "c": a late validation of the older hour
        ("d", "BK-HH2", 12),  # BK-HH2's newest hour, not the route's: its KPI only
        ("e", "BK-HH1", 50)]]
    _, _, records = _count(step, None, validations)
    kpis = [(key, msg.observe_time.ToDatetime(UTC), msg.value, msg.display_name) for spec, key, msg in records
            if spec is KPIS]
    for spec, key, msg in records:
        if spec is KPIS:  # what the operations dashboard's reader accepts under that key
            assert check_kpi(key, msg) is msg
    eight, nine = datetime(2026, 11, 26, 8, tzinfo=UTC), datetime(2026, 11, 26, 9, tzinfo=UTC)
    at_stop, on_line = "Ridership (Line 1 at Hay Hassani Terminus)", "Ridership (Line 1)"
    assert kpis == [
        ("ridership/BK-1/BK-HH1", eight, 1, at_stop), ("ridership/BK-1", eight, 1, on_line),
        ("ridership/BK-1/BK-HH1", nine, 1, at_stop), ("ridership/BK-1", nine, 1, on_line),
        ("ridership/BK-1/BK-HH2", eight, 1, "Ridership (Line 1 at Mosquée Hay Hassani)"),
        ("ridership/BK-1/BK-HH1", nine, 2, at_stop), ("ridership/BK-1", nine, 2, on_line)]
    route_kpi = next(msg for spec, key, msg in records if key == "ridership/BK-1")
    assert (route_kpi.entity.kind, route_kpi.entity.entity_id, route_kpi.unit) == ("route", "BK-1", "validations/h")


@pytest.mark.parametrize(("day", "minutes", "local_hours"), [
    # 2026-02-15 03:00 (UTC+1) becomes 02:00 (UTC+0): local 02:00-03:00 comes twice, as two hours.
    (datetime(2026, 2, 15, 0, 40, tzinfo=UTC), [0, 30, 50, 65, 80, 95, 110, 140],
     ["01:00+01:00", "02:00+01:00", "02:00+00:00", "03:00+00:00"]),
    # 2026-03-22 02:00 (UTC+0) becomes 03:00 (UTC+1): there is no local 02:00 hour.
    (datetime(2026, 3, 22, 0, 40, tzinfo=UTC), [0, 30, 50, 65, 80, 95, 110, 140],
     ["00:00+00:00", "01:00+00:00", "03:00+01:00", "04:00+01:00"]),
], ids=["dst-ends", "dst-starts"])
def test_route_and_stop_ridership_follow_casablancas_local_hours_on_a_dst_day(
    schedule: Schedule, day: datetime, minutes: list[int], local_hours: list[str],
) -> None:
    step = _step(schedule)
    tz = ZoneInfo("Africa/Casablanca")
    validations = [Validation(f"v{n}", CARD, "BK-E01", "BK-1", 34.9335, -2.3360, day + timedelta(minutes=m),
                              ("BK-HH1", "BK-HH2")[n % 2]) for n, m in enumerate(minutes)]
    _, _, published = _count(step, None, validations)
    history = {(msg.stop_id, msg.hour_start_time.ToDatetime(UTC)): msg.validations_count
               for spec, _, msg in published if spec is RIDERSHIP}
    route_kpis = {msg.observe_time.ToDatetime(UTC): msg.value for spec, key, msg in published
                  if spec is KPIS and key == "ridership/BK-1"}
    assert [hour.astimezone(tz).isoformat(timespec="minutes")[11:] for hour in route_kpis] == local_hours
    assert {("BK-1", hour): count for hour, count in route_kpis.items()} == ridership(validations, tz)
    for hour, count in route_kpis.items():  # the route's hour is the sum of its stops'
        assert count == sum(c for (_, h), c in history.items() if h == hour)


def test_a_validation_the_card_step_sends_again_after_a_crash_counts_once(schedule: Schedule) -> None:
    # The card's step replayed after a kill -9 re-sends what it had forwarded: one batch of its
    # partition, up to 1,000 records, that the route may have counted already.
    step = _step(schedule)
    sent = [_validation(f"v{n}", "BK-E01", "BK-1", ("BK-HH1", "BK-HH2")[n % 2], 34.9335, -2.3360, n / 60)
            for n in range(1500)]
    _, state, records = _count(step, None, sent)
    before = _totals(records)
    assert before["ridership/BK-1"] == 1500
    _, again, replayed = _count(step, state, sent[-1000:])
    assert replayed == [] and _totals(records + replayed) == before
    assert again is state


def test_a_stop_state_from_per_stop_counting_is_kept_as_read_and_counts_nothing(schedule: Schedule) -> None:
    # Before routes counted their ridership, each <route>/<stop> was an entity; its state stays in the changelog.
    old = {"kind": "stop", "route_id": "BK-1", "stop_id": "BK-HH1",
           "counts": {"2026-11-26T08:00:00.000000+00:00": 7}, "recent_ids": ["a"]}
    retired = entity_from_dict(old, "BK-1/BK-HH1")
    assert isinstance(retired, RetiredStopCounts) and entity_to_dict(retired) == old
    wire = validation_to_wire(_validation("z", "BK-E01", "BK-1", "BK-HH1", 34.9335, -2.3360, 0))
    with pytest.raises(InvalidRecord, match="RetiredStopCounts"):
        _step(schedule)(retired, EntityRecord("BK-1/BK-HH1", RIDERSHIP_VALIDATIONS, wire, NOW))
    # A validation still keyed the old way is not its entity's: the runner dead-letters it with the reason.
    with pytest.raises(InvalidRecord, match="does not match"):
        decode_entity_record(RIDERSHIP_VALIDATIONS, b"BK-1/BK-HH1", wire.SerializeToString(),
                             standard_headers(RIDERSHIP_VALIDATIONS, "test"), entity_of=mobility_entity_of)


def test_car_park_step_publishes_availability_and_raises_when_it_stays_full(schedule: Schedule) -> None:
    step = _step(schedule, parking=ParkingPolicy(full_for=timedelta(minutes=10), clear_after=timedelta(minutes=5)))
    state = None
    raised = []
    for minutes, occupied in [(0, 180), (5, 180), (11, 180), (20, 100), (26, 100)]:
        wire = parking_to_wire(ParkingObservation("BK-P1", NOW + timedelta(minutes=minutes), occupied, 180))
        _, result = _run(step, state, PARKING_OCCUPANCY, wire)
        state = result.state
        raised += [(minutes, a.state) for a in result.alerts]
        status = next(msg for spec, _, msg in result.records if spec is CAR_PARK_STATUS)
        assert status.car_park.free_spaces_count == 180 - occupied
        assert status.car_park.district.city_id == "berkane"
    assert raised == [(11, alerts_pb2.ALERT_STATE_RAISED), (26, alerts_pb2.ALERT_STATE_CLEARED)]
    assert isinstance(state, StoredCarPark) and state.active_alert == ""


def test_a_key_holding_another_kind_of_entity_is_refused(schedule: Schedule) -> None:
    step = _step(schedule)
    wire = parking_to_wire(ParkingObservation("BK-P1", NOW, 10, 180))
    with pytest.raises(InvalidRecord, match="StoredRoute"):
        step(StoredRoute.new("BK-P1"), EntityRecord("BK-P1", PARKING_OCCUPANCY, wire, NOW))
    with pytest.raises(InvalidRecord, match="car_park_id: unknown car park"):
        _run(step, None, PARKING_OCCUPANCY, parking_to_wire(ParkingObservation("NOPE", NOW, 1, 2)))


def _tick(step, state, entity_id, at):  # type: ignore[no-untyped-def]
    tick = tick_message(entity_id, at)
    return step(state if state is not None else Unseen(entity_id), EntityRecord(entity_id, ROUTE_TICKS, tick, at))


def test_a_car_park_ticked_on_the_routes_clock_raises_data_gap_in_its_district_when_counts_stop(
    schedule: Schedule,
) -> None:
    step = _step(schedule, parking=ParkingPolicy(silent_after=timedelta(minutes=20)))
    _, result = _run(step, None, PARKING_OCCUPANCY, parking_to_wire(ParkingObservation("BK-P1", NOW, 10, 180)))
    quiet = _tick(step, result.state, "BK-P1", NOW + timedelta(minutes=15))
    assert isinstance(quiet.state, StoredCarPark) and not quiet.alerts and not quiet.records
    silent = _tick(step, quiet.state, "BK-P1", NOW + timedelta(minutes=25))
    [raised] = silent.alerts
    assert raised.state == alerts_pb2.ALERT_STATE_RAISED and raised.rule_id == "data-gap"
    assert raised.district.city_id == "berkane" and raised.district.district_id
    assert silent.state.active_alert == ""  # the status's active alert is the car-park-full one
    back = parking_to_wire(ParkingObservation("BK-P1", NOW + timedelta(minutes=26), 12, 180))
    _, counted = _run(step, silent.state, PARKING_OCCUPANCY, back)
    assert [(a.rule_id, a.state) for a in counted.alerts] == [("data-gap", alerts_pb2.ALERT_STATE_CLEARED)]
    assert entity_from_dict(entity_to_dict(counted.state), "BK-P1") == counted.state


def test_a_route_tick_still_goes_to_the_route(schedule: Schedule) -> None:
    result = _tick(_step(schedule), None, "BK-1", NOW)
    assert isinstance(result.state, StoredRoute)


async def test_get_ridership_per_route_is_the_sum_of_its_stops_under_both_history_key_forms(
    schedule: Schedule, tmp_path: Path,
) -> None:
    write_credentials(tmp_path / "credentials.yaml", {"dashboard": ["mobility:read"]})
    runtime = build_runtime(MobilitySettings(
        kafka_bootstrap="127.0.0.1:1", credentials_file=tmp_path / "credentials.yaml", grpc_insecure=True))
    stops = ("BK-HH1", "BK-HH2", "BK-HH3")
    validations = [_validation(f"v{n}", "BK-E01", "BK-1", stops[n % 3 if n % 4 else 0], 34.9335, -2.3360, n * 3)
                   for n in range(30)]
    _, _, records = _count(_step(schedule), None, validations)
    later = NOW + timedelta(hours=3)
    for spec, key, msg in records:
        if spec is RIDERSHIP:
            runtime.ridership.put(key, msg, later)
    route_kpis = {msg.observe_time.seconds: msg.value for spec, key, msg in records
                  if spec is KPIS and key == "ridership/BK-1"}
    per_route = runtime.ridership_counts("BK-1", now=later)
    assert [(stop, hour, count) for _, stop, hour, count in per_route] == [
        ("", hour, count) for hour, count in route_kpis.items()]
    assert sum(count for *_, count in per_route) == len(validations)
    by_stop: dict[int, int] = {}
    for stop in stops:
        for _, asked, hour, count in runtime.ridership_counts("BK-1", stop, now=later):
            assert asked == stop
            by_stop[hour] = by_stop.get(hour, 0) + count
    assert by_stop == {hour: count for _, _, hour, count in per_route}
    # Upgraded from per-stop counting mid-hour: that stop's count before the upgrade stays under the
    # old key form, the route's entity counts on from zero under its own; the API serves their sum.
    first_hour = min(route_kpis)
    before_upgrade = datetime.fromtimestamp(first_hour, UTC)
    runtime.ridership.put(f"BK-1/BK-HH2/{before_upgrade.isoformat()}",
                          ridership_counted("BK-1", "BK-HH2", before_upgrade, 5), later)
    [(_, _, _, at_stop)] = runtime.ridership_counts("BK-1", "BK-HH2", first_hour, first_hour + 1, now=later)
    assert at_stop == 5 + next(msg.validations_count for spec, key, msg in reversed(records)
                               if spec is RIDERSHIP and key == f"ridership/BK-1/BK-HH2/{before_upgrade.isoformat()}")
    assert runtime.ridership_counts("BK-1", "", first_hour, first_hour + 1, now=later) == [
        ("BK-1", "", first_hour, route_kpis[first_hour] + 5)]
    await runtime.producer.stop()  # never started: no broker needed


def test_a_validation_at_a_stop_no_schedule_knows_is_refused_by_the_card_and_the_route_steps(
    schedule: Schedule,
) -> None:
    # One route's state counts all its stops: unknown stop ids would grow it without bound.
    step = _step(schedule)
    unknown = validation_to_wire(_validation("v9", "BK-E01", "BK-1", "X" * 200, 34.9335, -2.3360, 0))
    with pytest.raises(InvalidRecord, match="stop_id: unknown stop 'XXX"):
        _run(step, None, TICKET_VALIDATIONS, unknown)
    with pytest.raises(InvalidRecord, match="stop_id: unknown stop"):
        _run(step, None, RIDERSHIP_VALIDATIONS, unknown)
    on_board = validation_to_wire(_validation("v10", "BK-E01", "BK-1", "", 34.9335, -2.3360, 0))
    _, counted = _run(step, None, RIDERSHIP_VALIDATIONS, on_board)
    assert counted.records  # an empty stop id is a validation on board, counted
