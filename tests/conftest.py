"""Fixtures every test can use: unique names, and (in integration tests) a real Kafka-wire broker.

A session that selects PostgreSQL tests (marker ``postgres``) gets a server before they run: the
one ``MADINA_TEST_POSTGRES_URL`` names if it answers, else a private one
(``madina.devservers.postgres``) whose URL replaces the variable for the session, so fixtures and
the processes tests spawn all use it. Without either, those tests skip and say why (``-rs``).
"""

from __future__ import annotations

import atexit
import os
import uuid
from contextlib import ExitStack

import pytest

from madina.devservers.postgres import PostgresUnavailable, server_url

POSTGRES_URL_VARIABLE = "MADINA_TEST_POSTGRES_URL"
_postgres_server = pytest.StashKey[ExitStack]()


def pytest_collection_finish(session: pytest.Session) -> None:
    postgres_items = [item for item in session.items if item.get_closest_marker("postgres")]
    if not postgres_items or session.config.option.collectonly:
        return
    server = ExitStack()
    session.config.stash[_postgres_server] = server
    # For exits that never reach pytest_unconfigure (an internal error): the server must not
    # outlive the run.
    atexit.register(server.close)
    try:
        os.environ[POSTGRES_URL_VARIABLE] = server.enter_context(server_url(os.environ.get(POSTGRES_URL_VARIABLE)))
    except PostgresUnavailable as reason:
        for item in postgres_items:
            item.add_marker(pytest.mark.skip(reason=f"PostgreSQL tests skipped: {reason}"))


def pytest_unconfigure(config: pytest.Config) -> None:
    if server := config.stash.get(_postgres_server, None):
        server.close()


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic and group names, so tests never see each other's data."""
    return uuid.uuid4().hex[:10]
