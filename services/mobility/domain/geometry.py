"""Distances and along-path projection on city scale (a few km), in metres.

A local equirectangular projection around the path is accurate to well under a metre at this
scale, which is far below GPS noise, and keeps projection a few multiplications per segment.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

LatLon = tuple[float, float]
EARTH_RADIUS_M = 6_371_000.0


def distance_m(a: LatLon, b: LatLon) -> float:
    """Great-circle distance in metres (haversine)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True)
class Projection:
    """Where a point falls on a path: metres along it, metres off it, and the segment index."""

    along_m: float
    offset_m: float
    segment: int


@dataclass(frozen=True)
class Path:
    """A polyline with cumulative lengths, ready for repeated projections."""

    points: tuple[LatLon, ...]
    cumulative_m: tuple[float, ...]
    _xy: tuple[tuple[float, float], ...]
    _origin: LatLon

    @classmethod
    def of(cls, points: Sequence[LatLon]) -> Path:
        if len(points) < 2:
            raise ValueError("a path needs at least two points")
        origin = points[0]
        xy = tuple(_to_xy(point, origin) for point in points)
        cumulative = [0.0]
        for (x1, y1), (x2, y2) in pairwise(xy):
            cumulative.append(cumulative[-1] + math.hypot(x2 - x1, y2 - y1))
        return cls(tuple(points), tuple(cumulative), xy, origin)

    @property
    def length_m(self) -> float:
        return self.cumulative_m[-1]

    def project(self, point: LatLon, *, from_segment: int = 0, near_along_m: float | None = None) -> Projection:
        """Nearest point of the path from segment ``from_segment`` on.

        On a path that passes the same street twice (a loop), ``near_along_m`` breaks ties in
        favour of the projection nearest that along-distance (e.g. the vehicle's previous one).
        """
        px, py = _to_xy(point, self._origin)
        best: Projection | None = None
        best_score = math.inf
        for index in range(from_segment, len(self._xy) - 1):
            (x1, y1), (x2, y2) = self._xy[index], self._xy[index + 1]
            dx, dy = x2 - x1, y2 - y1
            length_sq = dx * dx + dy * dy
            t = 0.0 if length_sq == 0 else max(0.0, min(1.0, ((px - x1) * dx + (py - y1) * dy) / length_sq))
            offset = math.hypot(px - (x1 + t * dx), py - (y1 + t * dy))
            along = self.cumulative_m[index] + t * math.sqrt(length_sq)
            # Within a few metres, prefer the candidate nearest the hint (GPS noise is ~10 m).
            score = offset if near_along_m is None else offset + 0.01 * abs(along - near_along_m)
            if score < best_score - 1e-9:
                best_score = score
                best = Projection(along, offset, index)
        assert best is not None
        return best


def _to_xy(point: LatLon, origin: LatLon) -> tuple[float, float]:
    lat0 = math.radians(origin[0])
    x = math.radians(point[1] - origin[1]) * EARTH_RADIUS_M * math.cos(lat0)
    y = math.radians(point[0] - origin[0]) * EARTH_RADIUS_M
    return x, y
