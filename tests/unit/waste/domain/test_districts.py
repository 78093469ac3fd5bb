"""Per-district indicators: what a container contributes, when it is forwarded, and the fold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from madina_proto.waste.v1 import container_pb2
from services.waste.convert import readings_from_batch, summary_from_pb, summary_to_pb
from services.waste.domain.containers import load_containers
from services.waste.domain.detector import RULE_FIRE, ContainerStatus, DetectionConfig
from services.waste.domain.districts import (
    ContainerSummary,
    DistrictState,
    fold_container,
    summarise,
    summary_changed,
)
from services.waste.processor.container_stream import StoredState, apply_batch
from services.waste.topics import CONTAINER_LEVELS, CONTAINER_SUMMARIES

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
(CONTAINER,) = [c for c in load_containers() if c.id == "brk-centre-ville-h001"]


def status(fill: float | None, full_at: datetime | None = None, rules: tuple[str, ...] = ()) -> ContainerStatus:
    return ContainerStatus(CONTAINER.id, T0, fill, None, full_at, None, None, None, None, None, rules)


def summary(container_id: str, fill: float | None, needs: bool = False, fire: bool = False) -> ContainerSummary:
    return ContainerSummary(container_id, "berkane", "centre-ville", fill, needs, fire, T0)


def test_a_container_needs_collection_when_full_or_predicted_full_within_the_horizon() -> None:
    assert summarise(status(0.8), CONTAINER).needs_collection
    assert summarise(status(0.5, T0 + timedelta(hours=23)), CONTAINER).needs_collection
    assert not summarise(status(0.5, T0 + timedelta(hours=25)), CONTAINER).needs_collection
    assert summarise(status(0.3, rules=(RULE_FIRE,)), CONTAINER).fire_risk
    assert summarise(ContainerStatus(CONTAINER.id, None, None, None, None, None, None, None, None, None, ()),
                     CONTAINER) is None


def test_a_summary_is_forwarded_when_a_flag_flips_or_the_fill_moves_five_points() -> None:
    base = summary("a", 0.50)
    assert summary_changed(None, base)
    assert not summary_changed(base, summary("a", 0.54))
    assert summary_changed(base, summary("a", 0.55))
    assert summary_changed(base, summary("a", 0.50, fire=True))
    assert summary_changed(base, summary("a", 0.50, needs=True))
    assert summary_changed(summary("a", None), base) and not summary_changed(summary("a", None), summary("a", None))


def test_district_fold_publishes_only_changed_values_and_a_repeat_publishes_nothing() -> None:
    state = DistrictState("berkane/centre-ville")
    state, first = fold_container(state, summary("a", 0.9, needs=True))
    state, second = fold_container(state, summary("b", 0.3, fire=True))
    state, repeated = fold_container(state, summary("b", 0.3, fire=True))
    assert {k.kpi_id: k.value for k in first} == {
        "district-fill-mean": 0.9, "containers-full": 1.0, "containers-needing-collection": 1.0,
        "containers-fire-risk": 0.0}
    assert {k.kpi_id: k.value for k in second} == {"district-fill-mean": pytest.approx(0.6),
                                                   "containers-fire-risk": 1.0}
    assert repeated == []
    assert [k.band_level for k in second if k.kpi_id == "containers-fire-risk"] == [5]
    assert {k.key for k in first} >= {"containers-fire-risk/berkane/centre-ville"}
    assert DistrictState.from_dict(state.to_dict()) == state


def test_summary_round_trips_through_its_wire_form() -> None:
    assert summary_from_pb(summary_to_pb(summary("a", 0.42, needs=True))) == summary("a", 0.42, needs=True)
    assert summary_from_pb(summary_to_pb(summary("a", None))).fill_ratio is None


def test_processor_forwards_a_summary_keyed_by_district_only_when_it_changed() -> None:
    stored = StoredState.new(CONTAINER.id)
    config = DetectionConfig()
    forwarded = []
    for minute, fill in ((0, 0.40), (30, 0.40), (60, 0.41), (90, 0.40), (120, 0.40)):
        batch = container_pb2.ContainerLevelObservedBatch(container_id=CONTAINER.id, readings=[
            container_pb2.ContainerLevelObserved(container_id=CONTAINER.id, fill_ratio=fill, temperature_c=20.0,
                                                 battery_percent=90.0)])
        batch.readings[0].observe_time.FromDatetime(T0 + timedelta(minutes=minute))
        readings_from_batch(batch)  # a valid batch
        step = apply_batch(stored, batch, CONTAINER, config, None, CONTAINER_LEVELS)
        stored = step.state
        forwarded += [(key, m) for spec, key, m in step.records if spec is CONTAINER_SUMMARIES]
    assert {key for key, _ in forwarded} == {"berkane/centre-ville"}
    # Five statuses, one summary: the fill never moved 5 points and no flag flipped.
    assert len(forwarded) == 1 and not forwarded[0][1].needs_collection
    restored = StoredState.from_dict(stored.to_dict(), CONTAINER.id)
    assert restored.summary == stored.summary
