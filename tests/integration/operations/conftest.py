"""Database fixtures for the operations store, reusable by every operations integration test.

``store_url`` runs a test once on SQLite (a fresh file) and once on PostgreSQL. PostgreSQL comes
from ``MADINA_TEST_POSTGRES_URL`` (e.g. ``postgresql+psycopg://postgres@127.0.0.1:5432/test``);
each test gets its own schema, dropped afterwards, so parallel runs and reruns never collide.
Without the variable, or with the server unreachable, the PostgreSQL cases skip and say why
(``pytest -rs`` lists the reasons).
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from services.operations.store import AlertStore, migrate

POSTGRES_URL_VARIABLE = "MADINA_TEST_POSTGRES_URL"


class FakeClock:
    """A settable "now" for the store, so silence windows and recorded times are deterministic."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


UrlFactory = Callable[[], str]


@pytest.fixture
def sqlite_url_factory(tmp_path) -> UrlFactory:
    """Makes URLs of new, empty SQLite files."""
    names = (f"operations-{n}.db" for n in itertools.count())
    return lambda: f"sqlite:///{tmp_path / next(names)}"


@pytest.fixture
def sqlite_url(sqlite_url_factory: UrlFactory) -> str:
    return sqlite_url_factory()


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The PostgreSQL server for tests, checked once per session; skips with the reason if unusable."""
    url = os.environ.get(POSTGRES_URL_VARIABLE)
    if not url:
        pytest.skip(f"PostgreSQL tests skipped: {POSTGRES_URL_VARIABLE} is not set")
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as error:
        pytest.skip(f"PostgreSQL tests skipped: cannot reach {POSTGRES_URL_VARIABLE}: {error.orig}")
    finally:
        engine.dispose()
    return url


@pytest.fixture
def postgres_url_factory(postgres_server_url: str) -> Iterator[UrlFactory]:
    """Makes URLs whose connections live in a fresh schema of their own; all dropped after the test."""
    admin = create_engine(postgres_server_url)
    schemas: list[str] = []

    def new_url() -> str:
        schema = f"ops_test_{uuid.uuid4().hex[:12]}"
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        schemas.append(schema)
        url = make_url(postgres_server_url).update_query_dict({"options": f"-csearch_path={schema}"})
        return url.render_as_string(hide_password=False)

    try:
        yield new_url
    finally:
        with admin.begin() as connection:
            for schema in schemas:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def postgres_url(postgres_url_factory: UrlFactory) -> str:
    return postgres_url_factory()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url_factory(request: pytest.FixtureRequest) -> UrlFactory:
    """Makes empty database URLs, once per supported dialect."""
    return request.getfixturevalue(f"{request.param}_url_factory")


@pytest.fixture
def store_url(store_url_factory: UrlFactory) -> str:
    """An empty database URL, once per supported dialect."""
    return store_url_factory()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2025, 3, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
def store(store_url: str, clock: FakeClock) -> Iterator[AlertStore]:
    """A migrated, empty store on each dialect, with a settable clock."""
    migrate(store_url)
    with AlertStore(store_url, clock=clock) as alert_store:
        yield alert_store
