"""Topic config changes over the wire (IncrementalAlterConfigs, AlterConfigs, CreateTopics'
configs), with the same answers from the embedded broker and Apache Kafka: a change shows in
DescribeConfigs as set on the topic, an unknown key or a bad value is INVALID_CONFIG, and an
unknown topic is UNKNOWN_TOPIC_OR_PARTITION."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
)

from tests.support.topic_configs import describe_once_applied, describe_topic


def _admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def _create(admin: AdminClient, topic: str, **configs: str) -> None:
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1, config=configs)])[topic].result(15)
    deadline = time.monotonic() + 10
    while topic not in admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.05)


def _set(admin: AdminClient, topic: str, key: str, value: str) -> None:
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)],
    )
    admin.incremental_alter_configs([resource])[resource].result(15)


def _error_code(failing) -> int:
    with pytest.raises(KafkaException) as raised:
        failing()
    return raised.value.args[0].code()


def test_incremental_set_shows_as_set_on_the_topic_and_leaves_other_keys(broker_bootstrap, topic_name):
    admin = _admin(broker_bootstrap)
    _create(admin, topic_name, **{"cleanup.policy": "compact", "max.message.bytes": "2000000"})

    _set(admin, topic_name, "retention.ms", "5356800000")

    described = describe_once_applied(admin, topic_name, {"retention.ms": "5356800000"})
    assert described["retention.ms"].value == "5356800000"
    assert described["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert described["cleanup.policy"].value == "compact"
    assert described["max.message.bytes"].value == "2000000"


def test_alter_configs_replaces_the_whole_set(broker_bootstrap, topic_name):
    admin = _admin(broker_bootstrap)
    _create(admin, topic_name, **{"max.message.bytes": "2000000"})
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic_name, set_config={"retention.ms": "86400000"})

    admin.alter_configs([resource])[resource].result(15)

    described = describe_once_applied(admin, topic_name, {"retention.ms": "86400000"})
    assert described["retention.ms"].value == "86400000"
    assert described["max.message.bytes"].source == ConfigSource.DEFAULT_CONFIG.value


def test_an_unknown_config_key_or_a_bad_value_is_invalid_config(broker_bootstrap, topic_name):
    admin = _admin(broker_bootstrap)
    _create(admin, topic_name, **{"retention.ms": "86400000"})

    assert _error_code(lambda: _set(admin, topic_name, "retension.ms", "1000")) == KafkaError.INVALID_CONFIG
    assert _error_code(lambda: _set(admin, topic_name, "retention.ms", "a week")) == KafkaError.INVALID_CONFIG
    assert _error_code(lambda: _set(admin, topic_name, "cleanup.policy", "compress")) == KafkaError.INVALID_CONFIG
    assert describe_topic(admin, topic_name)["retention.ms"].value == "86400000"
    bad_topic = f"{topic_name}-bad"
    assert _error_code(lambda: _create(admin, bad_topic, **{"retension.ms": "1000"})) == KafkaError.INVALID_CONFIG


def test_changing_configs_of_an_unknown_topic_is_unknown_topic_or_partition(broker_bootstrap, topic_name):
    admin = _admin(broker_bootstrap)

    assert (
        _error_code(lambda: _set(admin, f"{topic_name}-missing", "retention.ms", "1000"))
        == KafkaError.UNKNOWN_TOPIC_OR_PART
    )
