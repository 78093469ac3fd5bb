"""Engines for the operations store and its start-up migration.

``migrate(url)`` brings the database to the newest schema with Alembic and is safe to call
from every replica at start-up: writers serialise on a lock (SQLite's write lock, a PostgreSQL
advisory lock), so two processes starting together do not race the migration.

SQLite runs in WAL mode with ``synchronous=NORMAL``: readers never block the writer, and a
committed batch survives a process crash (an OS crash may lose the last batches, which a Kafka
replay restores). Write transactions start with ``BEGIN IMMEDIATE`` so two writers queue
instead of deadlocking on a read-to-write lock upgrade.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.pool import StaticPool

DEFAULT_DATABASE_URL = "sqlite:///./data/operations.db"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
WRITE_OPTION = "operations_write"
"""Execution option that marks a connection's next transaction as a writing one."""
WRITER_LOCK_KEY = 0x4D41_4449_4E41_4F50
"""PostgreSQL advisory lock taken by every writing transaction ("MADINAOP")."""


def make_engine(database_url: str | URL = DEFAULT_DATABASE_URL, **engine_options: Any) -> Engine:
    """An engine configured for the operations store.

    ``sqlite://`` (no file) is a single shared in-memory database, handy in tests: pass the
    engine itself to :func:`migrate` and :class:`~services.operations.store.AlertStore`.
    For PostgreSQL, a schema other than ``public`` is chosen in the URL:
    ``postgresql+psycopg://host/db?options=-csearch_path%3Dmy_schema``.
    """
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, **engine_options)
    in_memory = url.database in (None, "", ":memory:")
    if in_memory:
        engine_options.setdefault("poolclass", StaticPool)
    else:
        Path(url.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
    connect_args = engine_options.pop("connect_args", {})
    connect_args.setdefault("check_same_thread", False)
    connect_args.setdefault("timeout", 30)
    engine = create_engine(url, connect_args=connect_args, **engine_options)
    event.listen(engine, "connect", _configure_sqlite_connection)
    event.listen(engine, "begin", _begin_sqlite_transaction)
    return engine


def _configure_sqlite_connection(dbapi_connection: Any, _connection_record: Any) -> None:
    # pysqlite's own transaction handling never issues BEGIN before reads and cannot issue
    # BEGIN IMMEDIATE; switch it off and let the "begin" listener below do it.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _begin_sqlite_transaction(connection: Connection) -> None:
    writing = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the store's single-writer lock until it commits or rolls back."""
    with engine.connect() as connection:
        connection.execution_options(**{WRITE_OPTION: True})
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _signed(WRITER_LOCK_KEY)}
                )
            yield connection


def migrate(database: str | URL | Engine = DEFAULT_DATABASE_URL) -> None:
    """Upgrade the database to the newest schema (``alembic upgrade head``); a no-op when current."""
    engine = database if isinstance(database, Engine) else make_engine(database)
    try:
        config = alembic_config()
        with write_transaction(engine) as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        if engine is not database:
            engine.dispose()


def alembic_config() -> Config:
    """Alembic configuration for the operations migrations, without an ini file."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _signed(key: int) -> int:
    # pg_advisory_xact_lock takes a signed bigint.
    return key - (1 << 64) if key >= 1 << 63 else key
