"""Fill-rate estimation: robust to noise, spikes and irregular reports; reset by emptying."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from services.waste.domain.fillrate import FillEstimate, estimate_fill, theil_sen

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def series(rate_per_hour: float, hours: int, *, start: float = 0.05, noise: float = 0.0, seed: int = 1,
           spikes: int = 0) -> list[tuple[datetime, float]]:
    rng = random.Random(seed)
    points = []
    for hour in range(hours):
        value = start + rate_per_hour * hour + rng.gauss(0, noise)
        points.append((T0 + timedelta(hours=hour, minutes=rng.randint(-10, 10)), min(1.0, max(0.0, value))))
    for index in rng.sample(range(1, hours), spikes):
        moment, _ = points[index]
        points[index] = (moment, rng.choice([0.0, 1.0]))  # echo off a bag, or no echo at all
    return sorted(points)


def test_theil_sen_recovers_an_exact_line() -> None:
    slope, intercept = theil_sen([(0, 1.0), (1, 3.0), (2, 5.0), (5, 11.0)])
    assert slope == pytest.approx(2.0) and intercept == pytest.approx(1.0)


def test_theil_sen_needs_two_distinct_x() -> None:
    with pytest.raises(ValueError):
        theil_sen([(1.0, 2.0), (1.0, 3.0)])


def test_rate_of_a_noisy_series_is_close_to_the_true_rate() -> None:
    estimate = estimate_fill(series(0.02, 30, noise=0.03))
    assert estimate is not None
    assert estimate.rate_per_hour == pytest.approx(0.02, abs=0.003)


def test_rate_ignores_gross_outliers_that_would_wreck_least_squares() -> None:
    points = series(0.015, 40, noise=0.02, spikes=6)
    estimate = estimate_fill(points)
    assert estimate is not None
    assert estimate.rate_per_hour == pytest.approx(0.015, abs=0.003)
    # Ordinary least squares on the same data, for contrast.
    xs = [(t - T0).total_seconds() / 3600 for t, _ in points]
    ys = [v for _, v in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    ols = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    assert abs(ols - 0.015) > abs(estimate.rate_per_hour - 0.015)


def test_too_little_history_gives_no_estimate() -> None:
    assert estimate_fill(series(0.02, 2)) is None
    close = [(T0, 0.1), (T0 + timedelta(minutes=5), 0.1), (T0 + timedelta(minutes=10), 0.11)]
    assert estimate_fill(close) is None


def test_settling_waste_does_not_give_a_negative_rate() -> None:
    estimate = estimate_fill([(T0 + timedelta(hours=h), 0.6 - 0.01 * h) for h in range(6)])
    assert estimate is not None and estimate.rate_per_hour == 0.0
    assert estimate.time_to_reach(0.8) is None


def test_predicted_full_time_follows_the_fit() -> None:
    estimate = FillEstimate(at=T0, fill_ratio=0.5, rate_per_hour=0.03, sample_count=10)
    assert estimate.time_to_reach(0.8) == T0 + timedelta(hours=10)
    assert estimate.fill_at(T0 + timedelta(hours=5)) == pytest.approx(0.65)
    assert estimate.fill_at(T0 + timedelta(days=5)) == 1.0
    assert FillEstimate(T0, 0.85, 0.01, 5).time_to_reach(0.8) == T0


def test_a_slow_fill_reported_every_15_minutes_through_a_coarse_noisy_sensor_keeps_a_rate() -> None:
    # 0.4 %/h, levels quantised to 2 %, noise sigma 0.01, one reading per 15 min: the detector keeps
    # the newest MAX_HISTORY readings. With a 24-reading window about two fits in three gave a rate
    # of 0 ("never full"), which flips the container's needs-collection flag.
    from services.waste.domain.fillrate import MAX_HISTORY

    rng = random.Random(7)
    start = datetime(2026, 11, 30, tzinfo=UTC)
    zero = 0
    for _ in range(200):
        level = rng.uniform(0.2, 0.5)
        readings = []
        for n in range(MAX_HISTORY):
            true = level + 0.004 * n / 4
            readings.append((start + timedelta(minutes=15 * n), round((true + rng.gauss(0, 0.01)) / 0.02) * 0.02))
        estimate = estimate_fill(readings)
        assert estimate is not None
        zero += estimate.rate_per_hour == 0
    assert zero / 200 < 0.10
