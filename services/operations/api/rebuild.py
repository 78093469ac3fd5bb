"""``python -m services.operations.api.rebuild``: rebuild an empty operations store from the topics.

Reads ``alerts.v1`` and ``alerts.actions.v1`` from the beginning into ``MADINA_DATABASE_URL``
(migrated first; refused if it already holds alerts). Start the service afterwards: its
consumer group resumes where it left off, and the store ignores what the rebuild already applied.
"""

from __future__ import annotations

import asyncio
import sys

from madina.observability import configure_logging
from madina.settings import load_settings
from services.operations.api.ingest import rebuild_store
from services.operations.settings import OperationsStoreSettings
from services.operations.store import migrate


def main() -> int:
    settings = load_settings(OperationsStoreSettings)
    configure_logging("operations-rebuild", settings.log_level, settings.log_format)
    migrate(settings.database_url)
    try:
        changes = asyncio.run(rebuild_store(settings.bootstrap_servers, settings.database_url))
    except ValueError as error:
        print(f"rebuild: {error}", file=sys.stderr)
        return 1
    print(f"rebuild: {changes} changes applied")
    return 0


if __name__ == "__main__":
    sys.exit(main())
