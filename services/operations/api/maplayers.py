"""Following every installed domain's map layers, for ``GET /api/v1/map/features``.

Each layer names a compacted topic keyed by entity and a pure function from one of its records to
map features (:mod:`madina.maplayers`). Like the KPI board, every replica reads each layer's topic
whole from the start (no consumer group) and keeps the newest features per key in memory.

A record that does not decode is skipped and logged by the shared reader (:mod:`madina.bus.reader`);
one whose layer function raises or returns something that is not a list of valid features is
skipped here: logged once per layer and reason, and counted in
``madina_operations_map_records_skipped_total``. The key keeps the features of its last good
record, so one domain's bug never stops operations or blanks another domain's layer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter

from madina.bus.reader import read_topic
from madina.domains import Domain, discover
from madina.maplayers import MapFeature, MapLayer
from services.operations.domain.mapfeatures import LatestFeatures, checked_features

log = logging.getLogger(__name__)

SKIPPED_RECORDS = Counter(
    "madina_operations_map_records_skipped_total",
    "Map layer records skipped: undecodable, or their features function failed",
    ["layer", "reason"],
)


@dataclass(frozen=True)
class DomainLayer:
    """A map layer and the domain that declares it (the legend groups by domain)."""

    domain: str
    layer: MapLayer

    @property
    def layer_id(self) -> str:
        return f"{self.domain}/{self.layer.name}"


def discovered_layers(domains: Sequence[Domain] | None = None) -> list[DomainLayer]:
    """Every layer the installed domains declare, in start order."""
    return [DomainLayer(domain.name, layer) for domain in (discover() if domains is None else domains)
            for layer in domain.map_layers]


@dataclass
class MapBoard:
    """The current features of every followed layer; ``ready`` once each backlog is read."""

    layers: Sequence[DomainLayer] = ()
    latest: LatestFeatures = field(default_factory=LatestFeatures)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    skipped: int = 0
    _warned: set[tuple[str, str]] = field(default_factory=set)

    def apply(self, layer: DomainLayer, to_features: Callable[[Any], Iterable[MapFeature]],
              key: str, message: Any) -> None:
        """Keep what one decoded record (None: a tombstone) stands for, or skip it."""
        if message is None:
            self.latest.delete(layer.layer_id, key)
            return
        try:
            features = checked_features(to_features(message))
        except Exception as error:  # domain code: whatever it raises, operations keeps going
            self.skip(layer, key, "features", error)
            return
        self.latest.put(layer.layer_id, key, features)

    def skip(self, layer: DomainLayer, key: str, reason: str, error: BaseException | None = None) -> None:
        self.skipped += 1
        SKIPPED_RECORDS.labels(layer=layer.layer_id, reason=reason).inc()
        if (layer.layer_id, reason) not in self._warned:  # a poisoned topic would flood the log
            self._warned.add((layer.layer_id, reason))
            log.warning("map layer record skipped (later ones only counted)", extra={
                "layer": layer.layer_id, "key": key[:200], "reason": reason, "error": repr(error)[:500]})

    def to_json(self, city_id: str | None) -> dict[str, Any]:
        return {
            "layers": [{"name": layer.layer.name, "domain": layer.domain, "kinds": self.latest.kinds(layer.layer_id)}
                       for layer in self.layers],
            "features": [feature.to_json() for feature in self.latest.features(city_id)],
        }


async def follow_map_layers(bootstrap: str, board: MapBoard) -> None:
    """Follow every layer's topic forever; ``board.ready`` is set once all backlogs are read."""
    followers = []
    backlogs = []
    for layer in board.layers:
        try:
            to_features = layer.layer.load()
        except Exception as error:  # a broken plug-in hides its layer, not the map
            board.skip(layer, "", "import", error)
            continue
        caught_up = asyncio.Event()
        backlogs.append(caught_up)
        followers.append(read_topic(bootstrap, layer.layer.topic, _on_record(board, layer, to_features),
                                    caught_up=caught_up))

    async def all_caught_up() -> None:
        await asyncio.gather(*(event.wait() for event in backlogs))
        board.ready.set()

    await asyncio.gather(all_caught_up(), *followers)
    # No layer to follow: stay running, as a follower would (the service stops when a task ends).
    await asyncio.Event().wait()


def _on_record(board: MapBoard, layer: DomainLayer,
               to_features: Callable[[Any], Iterable[MapFeature]]) -> Callable[[str, Any], None]:
    def on_record(key: str, message: Any) -> None:
        board.apply(layer, to_features, key, message)

    return on_record
