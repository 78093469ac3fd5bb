"""Service-day arithmetic: GTFS times count from noon minus 12 h of the service date, not midnight."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from services.mobility.domain.servicedays import (
    TripKey,
    resolve_start_date,
    run_of,
    runs_active,
    scheduled_instant,
    service_day_origin,
)

PARIS = ZoneInfo("Europe/Paris")
CASABLANCA = ZoneInfo("Africa/Casablanca")


def test_origin_is_local_midnight_on_an_ordinary_day() -> None:
    assert service_day_origin(date(2026, 6, 10), PARIS) == datetime(2026, 6, 9, 22, 0, tzinfo=UTC)


def test_origin_on_spring_forward_day_is_an_hour_before_local_midnight() -> None:
    # 2026-03-29: Paris goes from +01:00 to +02:00 at 02:00. Noon is 10:00 UTC, so the origin is
    # 22:00 UTC the day before (23:00 local): times after the change read as wall-clock times.
    origin = service_day_origin(date(2026, 3, 29), PARIS)
    assert origin == datetime(2026, 3, 28, 22, 0, tzinfo=UTC)
    assert scheduled_instant(date(2026, 3, 29), 8 * 3600, PARIS).astimezone(PARIS).hour == 8
    # 01:00:00 on that service date is 23:00 UTC = 00:00 local: one hour "early" on the clock.
    assert scheduled_instant(date(2026, 3, 29), 3600, PARIS).astimezone(PARIS).hour == 0


def test_origin_on_fall_back_day_differs_from_local_midnight() -> None:
    origin = service_day_origin(date(2026, 10, 25), PARIS)
    assert origin == datetime(2026, 10, 24, 23, 0, tzinfo=UTC)
    local_midnight = datetime(2026, 10, 25, tzinfo=PARIS).astimezone(UTC)
    assert local_midnight - origin == timedelta(hours=-1)


def test_morocco_ramadan_offset_change_shifts_the_origin() -> None:
    # Morocco drops from +01:00 to +00:00 for Ramadan (2026: 15 February to 22 March).
    before = service_day_origin(date(2026, 2, 10), CASABLANCA)
    during = service_day_origin(date(2026, 3, 1), CASABLANCA)
    assert before.astimezone(CASABLANCA).utcoffset() == timedelta(hours=1)
    assert during.astimezone(CASABLANCA).utcoffset() == timedelta(0)


def test_time_past_midnight_belongs_to_the_previous_service_date(schedule) -> None:
    run = run_of(schedule, TripKey("1-2530", "20261127"))  # a Friday
    assert run is not None
    assert run.start == datetime(2026, 11, 28, 0, 30, tzinfo=UTC)  # 01:30 local, +01:00
    assert resolve_start_date(schedule, "1-2530", run.start + timedelta(minutes=5), timedelta(minutes=30)) == "20261127"


def test_holiday_replaces_weekday_service_with_weekend(schedule) -> None:
    assert run_of(schedule, TripKey("1-0800", "20260730")) is None
    assert run_of(schedule, TripKey("1-0800-WE", "20260730")) is not None


def test_some_line_1_bus_is_running_at_every_hour(schedule) -> None:
    start = datetime(2026, 11, 27, 0, 7, tzinfo=UTC)
    for hour in range(0, 72):
        moment = start + timedelta(hours=hour, minutes=13 * hour % 60)
        assert any(runs_active(schedule, moment, "BK-1")), moment
