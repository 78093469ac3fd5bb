"""Alembic migrations of the operations store; run them with ``services.operations.store.migrate``."""
