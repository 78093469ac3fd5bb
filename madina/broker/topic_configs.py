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
    "min.compaction.lag.ms",
    "max.compaction.lag.ms",
    "segment.index.bytes",
    "segment.jitter.ms",
    "index.interval.bytes",
    "flush.messages",
    "flush.ms",
    "file.delete.delay.ms",
    "message.timestamp.difference.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.after.max.ms",
    "local.retention.ms",
    "local.retention.bytes",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
}
# -1 means unlimited for these (-2 for the local ones: as retention.*), and compression levels
# may be negative (zstd); every other integer setting is a size, a count or a duration.
LOWEST_INTEGER = {
    "retention.ms": -1,
    "retention.bytes": -1,
    "local.retention.ms": -2,
    "local.retention.bytes": -2,
    "compression.zstd.level": -131072,
}
BOOLEAN_TOPIC_CONFIGS = {
    "preallocate",
    "unclean.leader.election.enable",
    "message.downconversion.enable",
    "remote.storage.enable",
    "remote.log.copy.disable",
    "remote.log.delete.on.disable",
}
CHOICE_TOPIC_CONFIGS = {
    "message.timestamp.type": {"CreateTime", "LogAppendTime"},
    "compression.type": {"uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"},
}
# Every topic config name of Kafka 3.0 to 4.x (Kafka's TopicConfig): a name outside it is a
# typo or another product's setting, refused as Kafka refuses it rather than stored unused.
KNOWN_TOPIC_CONFIGS = (
    set(DEFAULT_TOPIC_CONFIGS)
    | INTEGER_TOPIC_CONFIGS
    | BOOLEAN_TOPIC_CONFIGS
    | set(CHOICE_TOPIC_CONFIGS)
    | {
        "min.cleanable.dirty.ratio",
        "message.format.version",
        "leader.replication.throttled.replicas",
        "follower.replication.throttled.replicas",
    }
)


def topic_name_problem(name: str | None) -> str | None:
    if not name or name in (".", "..") or not LEGAL_TOPIC_NAME.match(name):
        return f"illegal topic name {name!r}: use 1-249 of [a-zA-Z0-9._-]"
    return None


def validate_topic_configs(configs: dict[str, str | None]) -> str | None:
    """What is wrong with ``configs`` (the first problem, as Kafka's INVALID_CONFIG message), or None."""
    for key, value in configs.items():
        if key not in KNOWN_TOPIC_CONFIGS:
            return f"unknown topic config name: {key}"
        if key in INTEGER_TOPIC_CONFIGS and value is not None:
            try:
                number = int(value)
            except ValueError:
                return f"config {key} must be an integer, got {value!r}"
            lowest = LOWEST_INTEGER.get(key, 0)
            if number < lowest:
                return f"config {key} must be at least {lowest}, got {value!r}"
        if key in BOOLEAN_TOPIC_CONFIGS and value is not None and value.lower() not in ("true", "false"):
            return f"config {key} must be true or false, got {value!r}"
        if key in CHOICE_TOPIC_CONFIGS and value is not None and value not in CHOICE_TOPIC_CONFIGS[key]:
            return f"config {key} must be one of {', '.join(sorted(CHOICE_TOPIC_CONFIGS[key]))}, got {value!r}"
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
