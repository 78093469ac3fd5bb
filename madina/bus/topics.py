"""The topic registry: every Kafka topic Madina uses, declared once.

A topic is named ``<domain>.<event>.v1``, keyed by the id of the entity its events are about (so
one sensor's or one alert's events stay in order), carries exactly one protobuf message type, and
has a dead-letter twin ``<name>.dlq``. Services create their topics from this registry at start-up
(:func:`madina.bus.admin.ensure_topics`) instead of relying on broker auto-creation, so the same
code runs on Apache Kafka. Domains register their own topics; the registry itself knows none but
the shared alert topics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from google.protobuf.message import Message

from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.kpis.v1 import kpis_pb2

DAY_MS = 24 * 3600 * 1000
_NAME = re.compile(r"^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*\.v[0-9]+$")


@dataclass(frozen=True)
class TopicSpec:
    """One topic: its name, what its records carry and how long they live."""

    name: str
    message_type: type[Message]
    key: str
    description: str
    partitions: int | None = None  # None: the deployment's MADINA_TOPIC_PARTITIONS
    cleanup_policy: str = "delete"
    retention_ms: int = 7 * DAY_MS
    extra_config: dict[str, str] = field(default_factory=dict)

    @property
    def content_type(self) -> str:
        return f"application/x-protobuf; messageType={self.message_type.DESCRIPTOR.full_name}"

    @property
    def dead_letter(self) -> TopicSpec:
        """The twin that receives this topic's undecodable or invalid records, as received."""
        return replace(
            self,
            name=f"{self.name}.dlq",
            description=f"Records of {self.name} that could not be processed, with the reason in headers.",
            retention_ms=max(self.retention_ms, 30 * DAY_MS),
            cleanup_policy="delete",
        )

    def topic_config(self) -> dict[str, str]:
        return {
            "cleanup.policy": self.cleanup_policy,
            "retention.ms": str(self.retention_ms),
            **self.extra_config,
        }


class TopicRegistry:
    """Name -> TopicSpec, refusing duplicates and names that break the convention."""

    def __init__(self) -> None:
        self._specs: dict[str, TopicSpec] = {}

    def register(self, spec: TopicSpec) -> TopicSpec:
        if not _NAME.match(spec.name):
            raise ValueError(f"topic name {spec.name!r} does not follow <domain>.<event>.v<N>")
        existing = self._specs.get(spec.name)
        if existing is not None and existing != spec:
            raise ValueError(f"topic {spec.name!r} is already registered differently")
        self._specs[spec.name] = spec
        return spec

    def get(self, name: str) -> TopicSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise KeyError(f"unknown topic {name!r}; registered: {', '.join(sorted(self._specs))}") from None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(sorted(self._specs.values(), key=lambda spec: spec.name))

    def __len__(self) -> int:
        return len(self._specs)


REGISTRY = TopicRegistry()

ALERTS = REGISTRY.register(
    TopicSpec(
        name="alerts.v1",
        message_type=alerts_pb2.AlertEvent,
        key="alert_id",
        description="Every alert transition from every domain (raised, updated, escalated, cleared).",
        retention_ms=30 * DAY_MS,
    )
)
ALERT_ACTIONS = REGISTRY.register(
    TopicSpec(
        name="alerts.actions.v1",
        message_type=alerts_pb2.AlertAction,
        key="alert_id",
        description="Operator and partner commands on alerts (ack, assign, comment, resolve): the audit trail.",
        retention_ms=365 * DAY_MS,
    )
)
KPIS = REGISTRY.register(
    TopicSpec(
        name="kpis.v1",
        message_type=kpis_pb2.KpiObserved,
        key="<kpi_id>/<scope_id>",
        description="Latest indicator values from every domain for dashboards (AQI by district, late buses, ...).",
        cleanup_policy="compact",
        retention_ms=-1,
    )
)
