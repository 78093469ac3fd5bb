"""Fixtures of the environment integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.processes import BrokerProcess


@pytest.fixture
def broker() -> Iterator[str]:
    """A broker of the test's own: the processor's topics and consumer group have fixed names."""
    process = BrokerProcess.start(memory=True, default_partitions=2)
    try:
        yield process.bootstrap
    finally:
        process.stop()
