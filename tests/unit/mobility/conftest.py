"""Shared fixtures for the mobility domain tests: the sample feeds, loaded once."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.mobility.domain.gtfs import Schedule, load_feeds

GTFS_DIR = Path(__file__).resolve().parents[3] / "services" / "mobility" / "data" / "gtfs"


@pytest.fixture(scope="session")
def schedule() -> Schedule:
    return load_feeds([GTFS_DIR / "berkane", GTFS_DIR / "casablanca"])
