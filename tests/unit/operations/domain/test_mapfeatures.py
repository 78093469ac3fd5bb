from __future__ import annotations

import pytest

from madina.maplayers import Level, MapFeature
from services.operations.domain.mapfeatures import InvalidFeatures, LatestFeatures, checked_features


def feature(entity: str, *, city: str = "amman", kind: str = "bus", points=((31.95, 35.91),)) -> MapFeature:
    return MapFeature(feature_id=f"mobility/{kind}/{entity}", domain="mobility", kind=kind, label=entity,
                      city_id=city, points=tuple(points), level=Level.OK, status="on time")


def test_a_newer_record_replaces_every_feature_its_key_stood_for() -> None:
    latest = LatestFeatures()
    latest.put("waste/Routes", "plan-1", [feature("a", kind="route"), feature("b", kind="route")])
    latest.put("waste/Routes", "plan-1", [feature("c", kind="route")])
    assert [f.feature_id for f in latest.features()] == ["mobility/route/c"]


def test_a_record_standing_for_nothing_or_a_tombstone_clears_its_key_only() -> None:
    latest = LatestFeatures()
    latest.put("mobility/Buses", "trip-1", [feature("1")])
    latest.put("mobility/Buses", "trip-2", [feature("2")])
    latest.put("mobility/Buses", "trip-1", [])
    assert [f.feature_id for f in latest.features()] == ["mobility/bus/2"]
    latest.delete("mobility/Buses", "trip-2")
    assert latest.features() == []


def test_the_same_key_in_two_layers_is_two_records() -> None:
    latest = LatestFeatures()
    latest.put("energy/Lamps", "k", [feature("lamp", kind="streetlight")])
    latest.put("mobility/Buses", "k", [feature("bus")])
    assert latest.kinds("energy/Lamps") == ["streetlight"]
    assert latest.kinds("mobility/Buses") == ["bus"]
    assert len(latest.features()) == 2


def test_features_filter_by_city_in_a_stable_order() -> None:
    latest = LatestFeatures()
    latest.put("l", "2", [feature("z")])
    latest.put("l", "1", [feature("a"), feature("elsewhere", city="zarqa")])
    assert [f.feature_id for f in latest.features("amman")] == ["mobility/bus/a", "mobility/bus/z"]
    assert latest.features("nowhere") == []


@pytest.mark.parametrize("returned", [None, [object()], [{"feature_id": "x"}], [feature("1"), feature("1")]])
def test_what_is_not_a_list_of_distinct_features_is_refused(returned: object) -> None:
    with pytest.raises(InvalidFeatures):
        checked_features(returned)  # type: ignore[arg-type]


def test_lines_and_points_pass_the_check() -> None:
    route = feature("r", kind="route", points=((31.9, 35.9), (31.95, 35.91)))
    assert checked_features(iter([route, feature("p")])) == (route, feature("p"))
