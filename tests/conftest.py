"""Fixtures every test can use: unique names, and (in integration tests) a real Kafka-wire broker."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic and group names, so tests never see each other's data."""
    return uuid.uuid4().hex[:10]
