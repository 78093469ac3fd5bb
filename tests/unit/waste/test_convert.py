"""Wire <-> domain conversion for the waste contracts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from madina.alerts import AlertState, Severity
from madina.contract import InvalidRecord
from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.waste.v1 import container_pb2
from services.waste.convert import (
    alert_event,
    batches_by_container,
    container_to_pb,
    kpi_to_pb,
    plan_to_pb,
    reading_from_pb,
    readings_from_batch,
    status_to_pb,
    stream_from_pb,
    truck_to_pb,
)
from services.waste.domain.containers import Depot, Stream, Truck, load_containers
from services.waste.domain.detector import ContainerState, apply_readings
from services.waste.domain.kpis import container_kpis
from services.waste.domain.planning import ContainerForecast, plan_collection
from services.waste.domain.readings import Reading

T0 = datetime(2026, 5, 4, 6, 0, tzinfo=UTC)
CONTAINER = next(c for c in load_containers() if c.id == "cas-anfa-h001")


def test_readings_round_trip_with_optional_channels_absent_or_present() -> None:
    readings = [
        Reading(CONTAINER.id, T0, 0.42),
        Reading(CONTAINER.id, T0 + timedelta(hours=1), 0.5, temperature_c=21.5, tilt_deg=3.0, lid_open=False,
                battery_percent=88.0),
        Reading("cas-anfa-g001", T0, 0.1, lid_open=True),
    ]
    batches = batches_by_container(readings)
    assert [b.container_id for b in batches] == ["cas-anfa-g001", CONTAINER.id]
    decoded = [r for batch in batches for r in readings_from_batch(batch)]
    assert sorted(decoded, key=repr) == sorted(readings, key=repr)
    assert not batches[1].readings[0].HasField("temperature_c")


def test_a_reading_without_time_decodes_to_one_every_check_refuses() -> None:
    reading = reading_from_pb(container_pb2.ContainerLevelObserved(container_id="x", fill_ratio=0.2))
    assert reading.observe_time == datetime.min.replace(tzinfo=UTC)


def test_a_timestamp_no_datetime_holds_is_an_invalid_record_naming_the_field() -> None:
    message = container_pb2.ContainerLevelObserved(container_id="x", fill_ratio=0.2)
    message.observe_time.seconds = 10**13
    with pytest.raises(InvalidRecord, match=r"readings\[0\]\.observe_time"):
        readings_from_batch(container_pb2.ContainerLevelObservedBatch(container_id="x", readings=[message]))


def test_a_reading_of_another_container_in_a_batch_is_an_invalid_record() -> None:
    batch = container_pb2.ContainerLevelObservedBatch(
        container_id="a", readings=[container_pb2.ContainerLevelObserved(container_id="b")]
    )
    with pytest.raises(InvalidRecord, match=r"readings\[0\]\.container_id"):
        readings_from_batch(batch)


def test_streams_map_both_ways_and_unspecified_is_refused() -> None:
    for stream in Stream:
        assert stream_from_pb(truck_to_pb(Truck("t", "d", (stream,), 1)).streams[0], "stream") is stream
    assert stream_from_pb(container_to_pb(CONTAINER).stream, "stream") is Stream.HOUSEHOLD
    with pytest.raises(InvalidRecord, match="stream"):
        stream_from_pb(container_pb2.WASTE_STREAM_UNSPECIFIED, "stream")


def test_status_carries_fill_rate_and_predicted_full_time() -> None:
    readings = [Reading(CONTAINER.id, T0 + timedelta(hours=h), 0.1 + 0.05 * h) for h in range(6)]
    result = apply_readings(ContainerState.new(CONTAINER.id), readings, CONTAINER)
    assert result.status is not None
    message = status_to_pb(result.status, CONTAINER)
    assert message.container.district.display_name == "Anfa"
    assert message.container.volume_l == 1100
    assert message.fill_ratio_per_hour == pytest.approx(0.05)
    assert message.predicted_full_time.ToDatetime(tzinfo=UTC) == T0 + timedelta(hours=14)
    assert not message.HasField("temperature_c") and not message.HasField("last_emptied_time")


def test_alert_and_kpi_events_name_the_district_and_container() -> None:
    readings = [Reading(CONTAINER.id, T0 + timedelta(minutes=m), 0.9) for m in (0, 30, 60)]
    result = apply_readings(ContainerState.new(CONTAINER.id), readings, CONTAINER)
    (transition,) = result.transitions
    assert (transition.state, transition.severity) == (AlertState.RAISED, Severity.WARNING)
    event = alert_event(transition, CONTAINER)
    assert event.domain == "waste" and event.category == "fill" and event.source.kind == "container"
    assert event.source.entity_id == CONTAINER.id and event.district.display_name == "Anfa"
    assert event.severity == alerts_pb2.SEVERITY_WARNING and event.unit == "ratio"
    assert result.status is not None
    (kpi,) = [kpi_to_pb(k) for k in container_kpis(result.status, CONTAINER)]
    assert (kpi.kpi_id, kpi.entity.entity_id, kpi.value, kpi.band_level) == ("container-fill", CONTAINER.id, 0.9, 2)


def test_plan_event_lists_routes_in_order() -> None:
    depot = Depot("cas-depot-ain-chock", "Aïn Chock", "casablanca", 33.5335, -7.6075)
    containers = [c for c in load_containers() if c.district == "anfa" and c.stream is Stream.HOUSEHOLD][:4]
    plan = plan_collection(depot, [Truck("t1", depot.id, (Stream.HOUSEHOLD,), 48_000)], timedelta(hours=24),
                           [ContainerForecast(c, 0.9) for c in containers], plan_time=T0)
    message = plan_to_pb(plan)
    assert message.plan_id == "cas-depot-ain-chock/2026-05-04T06:00:00.000000+00:00"
    assert list(message.routes[0].container_ids) == list(plan.routes[0].container_ids)
    assert message.total_distance_m == pytest.approx(plan.total_distance_m)
    assert message.horizon.ToTimedelta() == timedelta(hours=24)
