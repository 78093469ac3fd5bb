"""Alembic environment for the operations store.

:func:`services.operations.store.migrate` passes an open connection in
``config.attributes["connection"]`` (already inside the writer lock). From the command line,
the URL comes from ``-x url=...`` or the ini's ``sqlalchemy.url``::

    .venv/bin/alembic -c services/operations/store/alembic.ini -x url=sqlite:///./data/operations.db \\
        revision -m "add x"
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from services.operations.store.engine import DEFAULT_DATABASE_URL, make_engine, write_transaction
from services.operations.store.schema import VERSION_TABLE, metadata

config = context.config


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    return context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url", DEFAULT_DATABASE_URL
    )


if context.is_offline_mode():
    run_offline()
elif (given := config.attributes.get("connection")) is not None:
    run_migrations(given)
else:
    engine = make_engine(_url())
    try:
        with write_transaction(engine) as connection:
            run_migrations(connection)
    finally:
        engine.dispose()
