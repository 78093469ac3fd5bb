"""Alert counts per domain and the median time to acknowledge, for the dashboard's KPI strip.

The store's own ``kpis()`` reports totals and means; operators asked for what needs them now
(active and unacknowledged per domain and severity) and a median, which one slow acknowledgement
cannot drag. These are read-only queries on the store's ``alerts`` table.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, true

from services.operations.domain import AlertStatus, Severity
from services.operations.store import AlertStore
from services.operations.store.schema import alerts


def alert_kpis(store: AlertStore) -> dict[str, Any]:
    with store.engine.connect() as connection:
        counts = connection.execute(
            select(alerts.c.domain, alerts.c.severity, alerts.c.status, func.count())
            .where(alerts.c.active == true())
            .group_by(alerts.c.domain, alerts.c.severity, alerts.c.status)
        ).all()
        # Domains whose alerts all cleared still get a card ("all clear").
        domains = connection.execute(select(alerts.c.domain).distinct()).scalars().all()
        acknowledged = alerts.c.time_to_acknowledge_s.is_not(None)
        total = connection.execute(select(func.count()).where(acknowledged)).scalar_one()
        middle: list[float] = []
        if total:
            # Median without percentile_cont, which SQLite lacks: the one or two middle rows.
            middle = list(connection.execute(
                select(alerts.c.time_to_acknowledge_s).where(acknowledged)
                .order_by(alerts.c.time_to_acknowledge_s).offset((total - 1) // 2).limit(2 - total % 2)
            ).scalars())
    by_domain: dict[str, dict[str, Any]] = {
        domain: {"active": 0, "unacknowledged": 0, "by_severity": {}} for domain in domains
    }
    for domain, severity, status, count in counts:
        entry = by_domain.setdefault(domain, {"active": 0, "unacknowledged": 0, "by_severity": {}})
        entry["active"] += count
        if status == AlertStatus.ACTIVE_UNACKNOWLEDGED.name:
            entry["unacknowledged"] += count
        name = Severity(severity).name.lower()
        entry["by_severity"][name] = entry["by_severity"].get(name, 0) + count
    return {
        "by_domain": dict(sorted(by_domain.items())),
        "median_time_to_acknowledge_s": sum(middle) / len(middle) if middle else None,
    }
