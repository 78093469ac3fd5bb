"""Persistence of the operations center: SQLAlchemy Core tables, Alembic migrations, and the
protobuf mapping.

Start-up calls :func:`migrate` once, then builds one :class:`AlertStore`::

    migrate(database_url)          # alembic upgrade head; safe on every start
    store = AlertStore(database_url)

Database URLs: ``sqlite:///./data/operations.db`` (the default; the folder is created) or
``postgresql+psycopg://user@host/db``, optionally with ``?options=-csearch_path%3Dschema``.
"""

from services.operations.domain.model import Record
from services.operations.store.engine import DEFAULT_DATABASE_URL, make_engine, migrate
from services.operations.store.mapping import (
    InvalidRecord,
    action_from_message,
    action_to_message,
    alert_to_message,
    change_to_message,
    event_from_message,
    event_to_message,
    record_from_message,
)
from services.operations.store.store import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    AlertStore,
    decode_page_token,
    encode_page_token,
)

__all__ = [
    "DEFAULT_DATABASE_URL",
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "AlertStore",
    "InvalidRecord",
    "Record",
    "action_from_message",
    "action_to_message",
    "alert_to_message",
    "change_to_message",
    "decode_page_token",
    "encode_page_token",
    "event_from_message",
    "event_to_message",
    "make_engine",
    "migrate",
    "record_from_message",
]
