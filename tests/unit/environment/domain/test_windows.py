"""Event-time rolling windows (services.environment.domain.windows)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest

from services.environment.domain.windows import SLICES_PER_WINDOW, StationWindows, WindowSpec

T0 = datetime(2025, 3, 1, 0, 0, tzinfo=UTC)  # aligned on every slice boundary used below
PM25_1H = WindowSpec.of("pm25_ugm3", timedelta(hours=1))
PM25_24H = WindowSpec.of("pm25_ugm3", timedelta(hours=24))
SO2_10M = WindowSpec.of("so2_ugm3", timedelta(minutes=10))
NOISE_1H = WindowSpec.of("laeq_db", timedelta(hours=1))


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def windows(*specs: WindowSpec) -> StationWindows:
    return StationWindows(specs or (PM25_1H,))


def test_mean_covers_samples_in_window_ending_at_newest_event_time():
    w = windows()
    for minute, value in [(1, 10.0), (2, 20.0), (3, 30.0)]:
        assert w.add(at(minute), {"pm25_ugm3": value}) is None
    mean = w.mean(PM25_1H)
    assert mean is not None
    assert mean.mean == pytest.approx(20.0)
    assert mean.sample_count == 3
    assert mean.end_time == at(3)


def test_sample_exactly_one_window_old_drops_out():
    w = windows()
    w.add(at(0), {"pm25_ugm3": 100.0})
    w.add(at(59), {"pm25_ugm3": 10.0})
    assert w.mean(PM25_1H).mean == pytest.approx(55.0)  # type: ignore[union-attr]
    w.add(at(60), {"pm25_ugm3": 10.0})
    assert w.mean(PM25_1H).mean == pytest.approx(10.0)  # type: ignore[union-attr]


def test_short_and_long_windows_of_same_measurand_are_independent():
    w = windows(SO2_10M, WindowSpec.of("so2_ugm3", timedelta(hours=1)))
    w.add(at(0), {"so2_ugm3": 600.0})
    w.add(at(30), {"so2_ugm3": 0.0})
    assert w.mean(SO2_10M).mean == 0.0  # type: ignore[union-attr]
    assert w.mean(WindowSpec.of("so2_ugm3", timedelta(hours=1))).mean == 300.0  # type: ignore[union-attr]


def test_out_of_order_sample_within_lateness_is_included():
    w = windows()
    w.add(at(10), {"pm25_ugm3": 30.0})
    assert w.add(at(5), {"pm25_ugm3": 10.0}) is None
    assert w.mean(PM25_1H).mean == pytest.approx(20.0)  # type: ignore[union-attr]
    assert w.max_event_time == at(10)


def test_sample_later_than_allowed_lateness_is_rejected_with_reason():
    w = windows()
    w.add(at(30), {"pm25_ugm3": 30.0})
    reason = w.add(at(19), {"pm25_ugm3": 999.0}, allowed_lateness=timedelta(minutes=10))
    assert reason is not None and reason.startswith("late")
    assert w.mean(PM25_1H).mean == 30.0  # type: ignore[union-attr]
    assert w.add(at(20), {"pm25_ugm3": 10.0}, allowed_lateness=timedelta(minutes=10)) is None


def test_latest_value_follows_event_time_not_arrival():
    w = windows()
    w.add(at(10), {"pm25_ugm3": 30.0})
    w.add(at(5), {"pm25_ugm3": 10.0})
    assert w.latest("pm25_ugm3") == (at(10), 30.0)


def test_noise_is_averaged_energetically():
    w = windows(NOISE_1H)
    w.add(at(1), {"laeq_db": 80.0})
    w.add(at(2), {"laeq_db": 40.0})
    mean = w.mean(NOISE_1H)
    assert mean is not None
    assert mean.mean == pytest.approx(10 * math.log10((10**8 + 10**4) / 2))
    assert mean.mean == pytest.approx(76.99, abs=0.01)  # not the arithmetic 60


def test_coverage_is_fraction_of_slices_with_data():
    w = windows(PM25_24H)
    for minute in range(0, 6 * 60, 10):
        w.add(at(minute), {"pm25_ugm3": 12.0})
    mean = w.mean(PM25_24H)
    assert mean is not None
    assert mean.coverage == pytest.approx(15 / SLICES_PER_WINDOW)  # 6 h of 24 h, 24-minute slices


def test_empty_window_has_no_mean():
    w = windows()
    assert w.mean(PM25_1H) is None
    w.add(at(0), {"no2_ugm3": 10.0})
    assert w.mean(PM25_1H) is None


def test_untracked_window_is_an_error():
    with pytest.raises(KeyError):
        windows().mean(PM25_24H)


def test_memory_stays_bounded_over_days():
    w = windows(PM25_1H, PM25_24H, SO2_10M)
    for minute in range(0, 3 * 24 * 60):
        w.add(at(minute), {"pm25_ugm3": 10.0, "so2_ugm3": 5.0})
    stored = w.to_dict()["windows"]
    assert all(len(rows) <= SLICES_PER_WINDOW for rows in stored.values())


def test_windows_round_trip_through_json():
    w = windows(PM25_1H, NOISE_1H)
    w.add(at(1), {"pm25_ugm3": 12.5, "laeq_db": 66.0})
    w.add(at(2), {"pm25_ugm3": 13.5})
    restored = StationWindows.from_dict(json.loads(json.dumps(w.to_dict())))
    assert restored.to_dict() == w.to_dict()
    assert restored.mean(PM25_1H) == w.mean(PM25_1H)


def test_track_keeps_existing_data_and_forgets_dropped_windows():
    w = windows(PM25_1H)
    w.add(at(1), {"pm25_ugm3": 12.0})
    w.track({PM25_1H, PM25_24H})
    assert w.mean(PM25_1H) is not None and w.mean(PM25_24H) is None
    w.track({PM25_24H})
    assert w.specs == (PM25_24H,)


def test_naive_time_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        windows().add(datetime(2025, 1, 1), {"pm25_ugm3": 1.0})


def test_mean_does_not_depend_on_the_order_slices_arrived_or_were_restored_in():
    """Float sums must not follow dict order, which differs between a live and a restored state."""
    samples = [(minute, 0.1 * (minute + 1) + 1e-9 * minute**3) for minute in range(0, 50, 7)]
    in_order = windows()
    for minute, value in samples:
        in_order.add(at(minute), {"pm25_ugm3": value})
    late_first = windows()
    for minute, value in sorted(samples, key=lambda s: (s[0] < 45, -s[0])):
        assert late_first.add(at(minute), {"pm25_ugm3": value}, allowed_lateness=timedelta(hours=1)) is None
    restored = StationWindows.from_dict(json.loads(json.dumps(late_first.to_dict())))
    means = {w.mean(PM25_1H) for w in (in_order, late_first, restored)}
    assert len(means) == 1


def test_copy_is_independent_of_the_original():
    w = windows()
    w.add(at(1), {"pm25_ugm3": 10.0})
    twin = w.copy()
    twin.add(at(2), {"pm25_ugm3": 30.0})
    assert w.mean(PM25_1H).mean == 10.0  # type: ignore[union-attr]
    assert twin.mean(PM25_1H).mean == 20.0  # type: ignore[union-attr]


def test_value_applies_minimum_coverage():
    w = windows(PM25_24H)
    w.add(at(0), {"pm25_ugm3": 10.0})
    assert w.value(PM25_24H) == 10.0
    assert w.value(PM25_24H, min_coverage=0.75) is None
