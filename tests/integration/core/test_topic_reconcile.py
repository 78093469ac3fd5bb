"""Start-up brings an existing topic's declared configs up to date, on the embedded broker and on
Apache Kafka, and leaves every key the declaration does not name as an operator set it.

The topic is configured and read back with confluent-kafka's admin client, a second client
beside the aiokafka one ``ensure_topics`` uses, so the assertions do not trust the code they check.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from aiokafka.errors import IncompatibleBrokerVersion
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource

from madina.bus import TopicSpec, ensure_topics
from madina.bus.admin import IncrementalAlterConfigsRequest
from madina.bus.topics import DAY_MS
from madina_proto.alerts.v1 import alerts_pb2
from tests.support.topic_configs import describe_once_applied, describe_topic

OPERATOR_KEY, OPERATOR_VALUE = "max.message.bytes", "2000000"  # set by hand; declared by no spec
DECLARED_KEYS = ("cleanup.policy", "retention.ms")

# What a release used to declare (compacted forever, as mobility.ridership.v1 once was) and what
# it declares now (compacted and deleted after 62 days).
OLD = TopicSpec(
    name="test.reconcile.v1",  # on a broker of the test's own; renamed per test on the shared one
    message_type=alerts_pb2.AlertEvent,
    key="alert_id",
    description="test topic",
    partitions=2,
    cleanup_policy="compact",
    retention_ms=-1,
)
NEW = replace(OLD, cleanup_policy="compact,delete", retention_ms=62 * DAY_MS)


def _operator_sets(bootstrap: str, topic: str, key: str, value: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)],
    )
    admin.incremental_alter_configs([resource])[resource].result(15)


def _renamed(spec: TopicSpec, unique: str) -> TopicSpec:
    return replace(spec, name=f"test.reconcile-{unique}.v1")


def _changes_logged(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, str | None, str]]:
    return [
        (record.topic, record.key, record.old, record.new)  # type: ignore[attr-defined]
        for record in caplog.records
        if record.name == "madina.bus.admin" and hasattr(record, "key")
    ]


@pytest.mark.parametrize("broker", ["embedded", "apache-kafka"], indirect=True)
async def test_existing_topic_gets_declared_configs_and_keeps_the_operators_own(
    broker: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="madina.bus.admin")
    assert await ensure_topics(broker, [OLD], default_partitions=2, with_dead_letters=False) == [OLD.name]
    _operator_sets(broker, OLD.name, OPERATOR_KEY, OPERATOR_VALUE)
    before = describe_once_applied(broker, OLD.name, {OPERATOR_KEY: OPERATOR_VALUE})
    assert before["cleanup.policy"].value == "compact" and before["retention.ms"].value == "-1"

    assert await ensure_topics(broker, [NEW], default_partitions=2, with_dead_letters=False) == []

    after = describe_once_applied(broker, NEW.name, {"retention.ms": str(62 * DAY_MS)})
    assert set(str(after["cleanup.policy"].value).split(",")) == {"compact", "delete"}
    assert after["retention.ms"].value == str(62 * DAY_MS)
    for key in DECLARED_KEYS:
        assert after[key].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert after[OPERATOR_KEY].value == OPERATOR_VALUE
    assert after[OPERATOR_KEY].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert _changes_logged(caplog) == [
        (NEW.name, "cleanup.policy", "compact", "compact,delete"),
        (NEW.name, "retention.ms", "-1", str(62 * DAY_MS)),
    ]

    caplog.clear()
    assert await ensure_topics(broker, [NEW], default_partitions=2, with_dead_letters=False) == []
    assert _changes_logged(caplog) == []
    again = describe_topic(broker, NEW.name)
    assert {key: entry.value for key, entry in again.items()} == {key: entry.value for key, entry in after.items()}


async def test_with_reconciling_off_a_difference_is_only_logged(
    kafka_bootstrap: str, unique: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = kafka_bootstrap
    old, new = _renamed(OLD, unique), _renamed(NEW, unique)
    caplog.set_level(logging.INFO, logger="madina.bus.admin")
    await ensure_topics(broker, [old], default_partitions=2, with_dead_letters=False)

    monkeypatch.setenv("MADINA_TOPIC_CONFIG_RECONCILE", "false")
    await ensure_topics(broker, [new], default_partitions=2, with_dead_letters=False)

    after = describe_topic(broker, old.name)
    assert after["cleanup.policy"].value == "compact" and after["retention.ms"].value == "-1"
    warned = [record for record in caplog.records if record.levelno == logging.WARNING and hasattr(record, "key")]
    assert [(record.key, record.old, record.new) for record in warned] == [  # type: ignore[attr-defined]
        ("cleanup.policy", "compact", "compact,delete"),
        ("retention.ms", "-1", str(62 * DAY_MS)),
    ]


async def test_a_partition_count_other_than_declared_is_logged_and_left(
    kafka_bootstrap: str, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    broker = kafka_bootstrap
    old, new = _renamed(OLD, unique), _renamed(NEW, unique)
    caplog.set_level(logging.INFO, logger="madina.bus.admin")
    await ensure_topics(broker, [old], default_partitions=2, with_dead_letters=False)

    await ensure_topics(broker, [replace(new, partitions=4)], default_partitions=2, with_dead_letters=False)

    warned = [record for record in caplog.records if hasattr(record, "declared_partitions")]
    assert [(record.partitions, record.declared_partitions) for record in warned] == [(2, 4)]  # type: ignore[attr-defined]
    admin = AdminClient({"bootstrap.servers": broker})
    assert len(admin.list_topics(old.name, timeout=15).topics[old.name].partitions) == 2


async def test_on_a_broker_without_incremental_alter_the_operators_keys_survive_the_whole_set_replacement(
    kafka_bootstrap: str, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = kafka_bootstrap
    old, new = _renamed(OLD, unique), _renamed(NEW, unique)
    await ensure_topics(broker, [old], default_partitions=2, with_dead_letters=False)
    _operator_sets(broker, old.name, OPERATOR_KEY, OPERATOR_VALUE)
    describe_once_applied(broker, old.name, {OPERATOR_KEY: OPERATOR_VALUE})

    def as_before_kafka_2_3(self, versions):
        raise IncompatibleBrokerVersion("IncrementalAlterConfigs is not advertised")

    monkeypatch.setattr(IncrementalAlterConfigsRequest, "prepare", as_before_kafka_2_3)
    await ensure_topics(broker, [new], default_partitions=2, with_dead_letters=False)

    after = describe_once_applied(broker, new.name, {"retention.ms": str(62 * DAY_MS)})
    assert (after["cleanup.policy"].value, after["retention.ms"].value) == ("compact,delete", str(62 * DAY_MS))
    assert (after[OPERATOR_KEY].value, after[OPERATOR_KEY].source) == (
        OPERATOR_VALUE,
        ConfigSource.DYNAMIC_TOPIC_CONFIG.value,
    )
