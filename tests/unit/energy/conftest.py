"""Shared fixtures for the energy domain tests: the seed network, settings and a sun calendar."""

from __future__ import annotations

import pytest

from services.energy.domain import EnergyConfig, Network, SunCalendar, load_config, load_network


@pytest.fixture(scope="session")
def network() -> Network:
    return load_network()


@pytest.fixture(scope="session")
def config() -> EnergyConfig:
    return load_config()


@pytest.fixture(scope="session")
def sun() -> SunCalendar:
    return SunCalendar()
