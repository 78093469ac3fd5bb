"""The map's current features: the newest features of every record key of every followed layer.

A domain's map layer turns one record of a compacted topic into the features that record stands
for now (:mod:`madina.maplayers`), so a newer record of the same key replaces *all* the features
the older one stood for: a bus that finished its trip, a container removed from a route, vanish
with the record that no longer names them. Pure: the caller decodes records and calls the
domain's function; this keeps what came out, checks it, and answers by city.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from madina.maplayers import MapFeature


class InvalidFeatures(ValueError):
    """A layer's function returned something the map cannot draw."""


def checked_features(returned: Iterable[object] | None) -> tuple[MapFeature, ...]:
    """``returned`` as features, or InvalidFeatures (a domain bug must not reach the dashboard)."""
    if returned is None:
        raise InvalidFeatures("features function returned None instead of an iterable")
    features: list[MapFeature] = []
    for item in returned:
        if not isinstance(item, MapFeature):
            raise InvalidFeatures(f"features function returned a {type(item).__name__}, not a MapFeature")
        features.append(item)
    ids = [feature.feature_id for feature in features]
    if len(set(ids)) != len(ids):
        raise InvalidFeatures("features function returned one feature_id twice")
    return tuple(features)


@dataclass
class LatestFeatures:
    """Newest features per (layer, record key); ``put`` replaces what the key stood for."""

    _by_key: dict[tuple[str, str], tuple[MapFeature, ...]] = field(default_factory=dict)

    def put(self, layer: str, key: str, features: Iterable[MapFeature]) -> None:
        kept = tuple(features)
        if kept:
            self._by_key[(layer, key)] = kept
        else:  # a record that stands for nothing now (a trip ended) clears its key
            self._by_key.pop((layer, key), None)

    def delete(self, layer: str, key: str) -> None:
        self._by_key.pop((layer, key), None)

    def features(self, city_id: str | None = None) -> list[MapFeature]:
        """Every current feature (of ``city_id`` only, if given), in a stable order."""
        selected = [
            feature
            for features in self._by_key.values()
            for feature in features
            if city_id is None or feature.city_id == city_id
        ]
        return sorted(selected, key=lambda feature: feature.feature_id)

    def kinds(self, layer: str) -> list[str]:
        """The kinds of feature ``layer`` shows now, as its legend lists them."""
        return sorted({
            feature.kind for (stored, _), features in self._by_key.items() if stored == layer for feature in features
        })
