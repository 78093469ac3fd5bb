"""What the operations dashboard counts: alerts per domain, severity and status, and acknowledgement times.

Read straight from the ``alerts`` table's columns (never the JSON documents), so counting stays one
grouped query however many alerts there are. :class:`AlertStatistics` is a part of
:class:`~services.operations.store.AlertStore`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Engine, func, select, true

from services.operations.domain.model import AlertStatus, Severity
from services.operations.store.schema import alerts


class AlertStatistics:
    """The counting half of the store; the store provides the engine."""

    _engine: Engine

    def dashboard_counts(self) -> dict[str, Any]:
        """Active and unacknowledged alerts per domain and severity, and the median time to acknowledge.

        What an operator needs now, next to :meth:`kpis`' totals and means: a median is not dragged
        by one slow acknowledgement. Domains whose alerts all cleared still appear ("all clear").
        """
        with self._engine.connect() as connection:
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

    def kpis(self) -> dict[str, Any]:
        """Counts per status, domain and severity, and mean time to acknowledge and to clear."""
        with self._engine.connect() as connection:
            counts = connection.execute(
                select(
                    alerts.c.domain, alerts.c.severity, alerts.c.status, alerts.c.active, func.count()
                ).group_by(alerts.c.domain, alerts.c.severity, alerts.c.status, alerts.c.active)
            ).all()
            means = connection.execute(
                select(func.avg(alerts.c.time_to_acknowledge_s), func.avg(alerts.c.time_to_clear_s))
            ).one()
        by_status: dict[str, int] = defaultdict(int)
        by_domain: dict[str, dict[str, int]] = defaultdict(lambda: {"total": 0, "active": 0})
        by_severity: dict[str, dict[str, int]] = defaultdict(lambda: {"total": 0, "active": 0})
        total = active = 0
        for domain, severity, status, is_active, count in counts:
            total += count
            by_status[status] += count
            by_domain[domain]["total"] += count
            by_severity[Severity(severity).name]["total"] += count
            if is_active:
                active += count
                by_domain[domain]["active"] += count
                by_severity[Severity(severity).name]["active"] += count
        return {
            "total": total,
            "active": active,
            "by_status": dict(by_status),
            "by_domain": dict(by_domain),
            "by_severity": dict(by_severity),
            "mean_time_to_acknowledge_s": None if means[0] is None else float(means[0]),
            "mean_time_to_clear_s": None if means[1] is None else float(means[1]),
        }
