from __future__ import annotations

from typing import Any

from madina.bus import KPIS
from madina.maplayers import Level, MapFeature, MapLayer
from services.operations.api.maplayers import SKIPPED_RECORDS, DomainLayer, MapBoard

LAYER = DomainLayer("waste", MapLayer(name="Containers", topic=KPIS,
                                      features="tests.unit.operations.api.test_maplayers:container_features"))


def container_features(message: Any) -> list[MapFeature]:
    if message == "poison":
        raise RuntimeError("domain bug")
    if message == "not features":
        return ["not a feature"]  # type: ignore[list-item]
    return [MapFeature(feature_id=f"waste/container/{message}", domain="waste", kind="container", label=message,
                       city_id="amman", points=((31.95, 35.91),), level=Level.WATCH, status="82 % full")]


def skipped(reason: str) -> float:
    return SKIPPED_RECORDS.labels(layer=LAYER.layer_id, reason=reason)._value.get()


def test_a_failing_or_invalid_record_is_skipped_counted_and_keeps_the_last_good_features() -> None:
    board = MapBoard(layers=[LAYER])
    board.apply(LAYER, container_features, "c1", "c1")
    before = skipped("features")
    board.apply(LAYER, container_features, "c1", "poison")
    board.apply(LAYER, container_features, "c1", "not features")
    assert skipped("features") == before + 2
    assert board.skipped == 2
    assert [f["feature_id"] for f in board.to_json(None)["features"]] == ["waste/container/c1"]


def test_the_json_lists_every_declared_layer_with_the_kinds_it_shows() -> None:
    board = MapBoard(layers=[LAYER])
    assert board.to_json("amman") == {"layers": [{"name": "Containers", "domain": "waste", "kinds": []}],
                                      "features": []}
    board.apply(LAYER, container_features, "c1", "c1")
    body = board.to_json("amman")
    assert body["layers"][0]["kinds"] == ["container"]
    assert body["features"][0]["level"] == "watch"
    board.apply(LAYER, container_features, "c1", None)
    assert board.to_json("amman")["features"] == []
