"""What a domain shows on the operations map, without operations knowing the domain.

A domain declares :class:`MapLayer`s in its :class:`~madina.domains.Domain` (``map_layers``): a
topic it already publishes (a compacted status topic, keyed by entity) and a pure function that
turns one record of it into the :class:`MapFeature`s the map draws. The operations service follows
those topics, keeps the newest features per record key and serves them to the dashboard; the
domain keeps its own contract, and operations imports only the layer's ``features`` function
through its dotted path, when it follows the topic.

``features`` is domain code: pure, no Kafka, gRPC or HTTP. It gets the decoded message (the
topic's protobuf type) and returns every feature that record stands for now; a record that stands
for none (a trip ended, a container removed) returns ``()``, and the features it stood for before
disappear from the map.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from madina.bus.topics import TopicSpec


class Level(enum.IntEnum):
    """How the map colours a feature, worst last (the dashboard's alert colours)."""

    UNKNOWN = 0  # no recent data
    OK = 1
    WATCH = 2  # worth a look: a bus a few minutes late, a container filling up
    WARNING = 3
    CRITICAL = 4


@dataclass(frozen=True)
class MapFeature:
    """One thing on the map: a point (a bus, a lamp, a container) or a line (a planned route)."""

    feature_id: str  # unique across domains: "<domain>/<kind>/<entity id>"
    domain: str
    kind: str  # what it is, as the legend names it: "bus", "streetlight", "container", "collection-route"
    label: str  # what a tooltip names it: "Bus 12 (route 3)", "Lamp BK-C1-07"
    city_id: str
    points: tuple[tuple[float, float], ...]  # (lat, lon): one for a point, the vertices in order for a line
    level: Level
    status: str  # short human text: "+4 min late", "lamp failed", "82 % full"
    observe_time: datetime | None = None
    details: dict[str, str] = field(default_factory=dict)  # extra tooltip lines, label -> value

    @property
    def is_line(self) -> bool:
        return len(self.points) > 1

    def __post_init__(self) -> None:
        if not self.points:
            raise ValueError(f"map feature {self.feature_id!r} has no point")
        for lat, lon in self.points:
            if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
                raise ValueError(f"map feature {self.feature_id!r}: position ({lat}, {lon}) is off the globe")

    def to_json(self) -> dict[str, Any]:
        return {
            "feature_id": self.feature_id,
            "domain": self.domain,
            "kind": self.kind,
            "label": self.label,
            "city_id": self.city_id,
            "points": [list(point) for point in self.points],
            "level": self.level.name.lower(),
            "status": self.status,
            "observe_time": self.observe_time.isoformat() if self.observe_time else None,
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class MapLayer:
    """A domain's layer: the features of one of its topics."""

    name: str  # the legend's name and its toggle: "Buses", "Street lights", "Containers", "Collection routes"
    topic: TopicSpec  # compacted, keyed by entity; its records decode with the topic's message type
    features: str  # "package.module:function", (message) -> Iterable[MapFeature]; imported when followed

    def load(self) -> Callable[[Any], Iterable[MapFeature]]:
        from madina.domains import load_entry_point

        return load_entry_point(self.features)  # type: ignore[return-value]


def worst(levels: Sequence[Level]) -> Level:
    return max(levels, default=Level.UNKNOWN)
