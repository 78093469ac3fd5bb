"""The token bucket behind per-principal and failed-authentication limits, on a fake clock."""

from __future__ import annotations

import pytest

from madina.ratelimit import KeyedBuckets, Rate


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_admits_the_burst_then_says_when_the_next_token_comes() -> None:
    clock = FakeClock()
    buckets = KeyedBuckets(clock)
    rate = Rate(per_s=2.0, burst=3)

    admitted = [buckets.take("agency", rate) for _ in range(3)]
    refused = buckets.take("agency", rate)

    assert admitted == [0.0, 0.0, 0.0]
    assert refused == pytest.approx(0.5)


def test_tokens_come_back_at_the_rate_and_never_past_the_burst() -> None:
    clock = FakeClock()
    buckets = KeyedBuckets(clock)
    rate = Rate(per_s=1.0, burst=2)
    for _ in range(2):
        buckets.take("agency", rate)

    clock.now += 1.0
    assert buckets.take("agency", rate) == 0.0
    assert buckets.take("agency", rate) > 0

    clock.now += 3600.0  # idle for an hour: still only the burst
    assert [buckets.take("agency", rate) for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]


def test_a_refused_call_takes_nothing_so_waiting_the_retry_time_is_enough() -> None:
    clock = FakeClock()
    buckets = KeyedBuckets(clock)
    rate = Rate(per_s=0.5, burst=1)
    buckets.take("agency", rate)
    retry_after = buckets.take("agency", rate)
    for _ in range(10):
        assert buckets.take("agency", rate) > 0

    clock.now += retry_after

    assert buckets.take("agency", rate) == 0.0


def test_each_key_has_its_own_bucket() -> None:
    buckets = KeyedBuckets(FakeClock())
    rate = Rate(per_s=1.0, burst=1)

    assert buckets.take("a", rate) == 0.0
    assert buckets.take("a", rate) > 0
    assert buckets.take("b", rate) == 0.0


def test_a_changed_rate_applies_to_a_live_bucket() -> None:
    clock = FakeClock()
    buckets = KeyedBuckets(clock)
    buckets.take("agency", Rate(per_s=1.0, burst=1))

    clock.now += 0.1
    assert buckets.take("agency", Rate(per_s=100.0, burst=5)) == 0.0


def test_waiting_looks_without_taking() -> None:
    buckets = KeyedBuckets(FakeClock())
    rate = Rate(per_s=1.0, burst=1)

    assert buckets.wait("unknown", rate) == 0.0
    assert len(buckets) == 0
    buckets.take("agency", rate)
    assert buckets.wait("agency", rate) == pytest.approx(1.0)
    assert buckets.wait("agency", rate) == pytest.approx(1.0)


def test_many_keys_stay_bounded_by_forgetting_the_least_recently_used() -> None:
    buckets = KeyedBuckets(FakeClock(), max_keys=3)
    rate = Rate(per_s=1.0, burst=1)
    for key in ("a", "b", "c"):
        buckets.take(key, rate)
    buckets.take("a", rate)  # "a" is used again, so "b" is now the oldest

    buckets.take("d", rate)

    assert len(buckets) == 3
    assert buckets.wait("b", rate) == 0.0  # forgotten: a full bucket again
    assert buckets.wait("a", rate) > 0


@pytest.mark.parametrize(("per_s", "burst"), [(0, 1), (-1, 1), (1, 0)])
def test_a_rate_that_could_never_admit_is_refused(per_s: float, burst: int) -> None:
    with pytest.raises(ValueError, match="per_s > 0 and burst >= 1"):
        Rate(per_s, burst)
