"""Topic configuration vocabulary: the names Kafka gives topic settings, their defaults and checks.

Shared by the admin APIs (CreateTopics, AlterConfigs, DescribeConfigs), which validate and
report configs, and by the partition log, which reads the settings in effect. Only Kafka's own
names are used, so clients and tools configure this broker as they would Kafka.
"""

from __future__ import annotations

import re

LEGAL_TOPIC_NAME = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")

# Kafka's own defaults, reported by DescribeConfigs and used when a topic sets nothing.
DEFAULT_TOPIC_CONFIGS: dict[str, str] = {
    "cleanup.policy": "delete",
    "retention.ms": "604800000",
    "retention.bytes": "-1",
    "segment.bytes": "1073741824",
    "segment.ms": "604800000",
    "delete.retention.ms": "86400000",
    "min.cleanable.dirty.ratio": "0.5",
    "max.message.bytes": "1048588",
    "message.timestamp.type": "CreateTime",
    "min.insync.replicas": "1",
    "compression.type": "producer",
}
INTEGER_TOPIC_CONFIGS = {
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
    "delete.retention.ms",
    "max.message.bytes",
    "min.insync.replicas",
}


def topic_name_problem(name: str | None) -> str | None:
    if not name or name in (".", "..") or not LEGAL_TOPIC_NAME.match(name):
        return f"illegal topic name {name!r}: use 1-249 of [a-zA-Z0-9._-]"
    return None


def validate_topic_configs(configs: dict[str, str | None]) -> str | None:
    for key, value in configs.items():
        if key in INTEGER_TOPIC_CONFIGS and value is not None:
            try:
                int(value)
            except ValueError:
                return f"config {key} must be an integer, got {value!r}"
        if key == "min.cleanable.dirty.ratio" and value is not None:
            try:
                ratio = float(value)
            except ValueError:
                ratio = -1.0
            if not 0 <= ratio <= 1:
                return f"config {key} must be a number from 0 to 1, got {value!r}"
        policies = set((value or "").replace(" ", "").split(","))
        if key == "cleanup.policy" and value is not None and not policies <= {"delete", "compact"}:
            return f"cleanup.policy must be delete and/or compact, got {value!r}"
    return None
