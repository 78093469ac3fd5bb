"""What start-up changes on an existing topic: only declared keys whose value differs."""

from __future__ import annotations

from dataclasses import replace

import pytest
from aiokafka.admin.config_resource import ConfigResource
from aiokafka.errors import IncompatibleBrokerVersion
from aiokafka.protocol.admin import AlterConfigsResponse_v1, DescribeConfigsResponse_v1

from madina.bus.admin import (
    CONFIG_SET,
    DYNAMIC_TOPIC_CONFIG,
    ConfigChange,
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsRequest_v0,
    TopicConfigs,
    alter_configs_replacement,
    config_changes,
    reconcile_topic_configs,
)
from madina.bus.topics import DAY_MS, TopicSpec
from madina_proto.alerts.v1 import alerts_pb2

TOPIC = "mobility.ridership.v1"
IN_EFFECT = {
    "cleanup.policy": "compact",
    "retention.ms": "-1",
    "max.message.bytes": "2000000",  # an operator's
    "segment.bytes": "1073741824",  # the broker's default
}


def test_declared_keys_that_differ_are_changes_with_old_and_new_values():
    declared = {"cleanup.policy": "compact,delete", "retention.ms": "5356800000"}

    assert config_changes(TOPIC, declared, IN_EFFECT) == [
        ConfigChange(TOPIC, "cleanup.policy", "compact", "compact,delete"),
        ConfigChange(TOPIC, "retention.ms", "-1", "5356800000"),
    ]


def test_keys_the_declaration_does_not_name_are_never_changes():
    assert config_changes(TOPIC, {"cleanup.policy": "compact", "retention.ms": "-1"}, IN_EFFECT) == []


def test_a_declared_value_equal_to_the_brokers_default_is_no_change():
    assert config_changes(TOPIC, {"segment.bytes": "1073741824"}, IN_EFFECT) == []


def test_cleanup_policy_is_compared_as_a_set_of_policies():
    in_effect = {"cleanup.policy": "delete, compact"}

    assert config_changes(TOPIC, {"cleanup.policy": "compact,delete"}, in_effect) == []
    assert config_changes(TOPIC, {"cleanup.policy": "compact"}, in_effect) == [
        ConfigChange(TOPIC, "cleanup.policy", "delete, compact", "compact")
    ]


def test_a_declared_key_the_broker_does_not_report_is_a_change_from_none():
    assert config_changes(TOPIC, {"min.compaction.lag.ms": "60000"}, IN_EFFECT) == [
        ConfigChange(TOPIC, "min.compaction.lag.ms", None, "60000")
    ]


def test_alter_configs_replacement_keeps_every_key_set_on_the_topic():
    current = TopicConfigs(
        in_effect=IN_EFFECT,
        set_on_topic={"cleanup.policy": "compact", "retention.ms": "-1", "max.message.bytes": "2000000"},
    )
    changes = [ConfigChange(TOPIC, "retention.ms", "-1", "5356800000")]

    assert alter_configs_replacement(current, changes) == {
        "cleanup.policy": "compact",
        "retention.ms": "5356800000",
        "max.message.bytes": "2000000",
    }


def test_incremental_request_sets_only_the_changed_keys():
    changes = {TOPIC: [ConfigChange(TOPIC, "retention.ms", "-1", "5356800000")]}

    struct = IncrementalAlterConfigsRequest(changes).prepare({44: (0, 1)})

    assert isinstance(struct, IncrementalAlterConfigsRequest_v0)
    assert struct.to_object() == {
        "resources": [
            {
                "resource_type": 2,
                "resource_name": TOPIC,
                "configs": [{"name": "retention.ms", "config_operation": CONFIG_SET, "value": "5356800000"}],
            }
        ],
        "validate_only": False,
    }


def test_incremental_request_is_refused_before_sending_to_a_broker_without_it():
    with pytest.raises(IncompatibleBrokerVersion):
        IncrementalAlterConfigsRequest({}).prepare({33: (0, 1)})


class _BrokerWithoutIncrementalAlter:
    """An admin client of a broker older than Kafka 2.3: DescribeConfigs v1 and AlterConfigs only."""

    def __init__(self) -> None:
        self.altered: list[ConfigResource] = []

    async def describe_configs(self, resources):
        entries = [
            ("cleanup.policy", "compact", False, DYNAMIC_TOPIC_CONFIG, False, []),
            ("retention.ms", "-1", False, DYNAMIC_TOPIC_CONFIG, False, []),
            ("max.message.bytes", "2000000", False, DYNAMIC_TOPIC_CONFIG, False, []),
            ("segment.bytes", "1073741824", False, 5, False, []),  # DEFAULT_CONFIG
        ]
        return [DescribeConfigsResponse_v1(0, [(0, None, 2, TOPIC, entries)])]

    async def _send_request(self, request):
        return request.prepare({33: (0, 1)})  # raises as aiokafka's connection does

    async def alter_configs(self, resources):
        self.altered.extend(resources)
        return [AlterConfigsResponse_v1(0, [(0, None, 2, TOPIC)])]


async def test_without_incremental_alter_the_whole_set_goes_out_with_the_operators_keys():
    admin = _BrokerWithoutIncrementalAlter()
    spec = TopicSpec(TOPIC, alerts_pb2.AlertEvent, "id", "test", cleanup_policy="compact", retention_ms=-1)

    changes = await reconcile_topic_configs(admin, {TOPIC: replace(spec, retention_ms=62 * DAY_MS)})  # type: ignore[arg-type]

    assert changes == [ConfigChange(TOPIC, "retention.ms", "-1", str(62 * DAY_MS))]
    assert [(resource.name, resource.configs) for resource in admin.altered] == [
        (TOPIC, {"cleanup.policy": "compact", "retention.ms": str(62 * DAY_MS), "max.message.bytes": "2000000"})
    ]
