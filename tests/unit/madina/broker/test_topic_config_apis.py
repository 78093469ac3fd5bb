"""AlterConfigs and IncrementalAlterConfigs on topics: checked like CreateTopics, shown by
DescribeConfigs as set on the topic, and used by retention and compaction from then on."""

from __future__ import annotations

import time

from kafka.protocol.admin import AlterConfigsRequest, DescribeConfigsRequest, IncrementalAlterConfigsRequest

from madina.broker import errors
from madina.broker.admin import CONFIG_DELETE, CONFIG_SET, RESOURCE_TOPIC, AdminApis
from madina.broker.handlers import DEFAULT_CONFIG, DYNAMIC_TOPIC_CONFIG, Handlers
from madina.broker.store import LogStore
from tests.unit.madina.broker.test_cleaner import all_records, fill
from tests.unit.madina.broker.test_partition import append

TOPIC = "mobility.ridership.v1"
_Resource = IncrementalAlterConfigsRequest.AlterConfigsResource


class _Admin(AdminApis):
    def __init__(self, store: LogStore) -> None:
        self.store = store

    describe_configs = Handlers.describe_configs


def _admin(**configs: str) -> _Admin:
    store = LogStore(None)
    store.create_topic(TOPIC, 1, {key.replace("_", "."): value for key, value in configs.items()})
    return _Admin(store)


def _incremental(admin: _Admin, topic: str, *operations: tuple[str, int, str | None]) -> tuple[int, str | None]:
    request = IncrementalAlterConfigsRequest(
        resources=[
            _Resource(
                resource_type=RESOURCE_TOPIC,
                resource_name=topic,
                configs=[
                    _Resource.AlterableConfig(name=name, config_operation=operation, value=value)
                    for name, operation, value in operations
                ],
            )
        ],
        validate_only=False,
    )
    (response,) = admin.incremental_alter_configs(request, None).responses
    return response.error_code, response.error_message


def _described(admin: _Admin) -> dict[str, tuple[str, int]]:
    request = DescribeConfigsRequest(
        resources=[
            DescribeConfigsRequest.DescribeConfigsResource(
                resource_type=RESOURCE_TOPIC, resource_name=TOPIC, configuration_keys=None
            )
        ],
        include_synonyms=False,
        include_documentation=False,
    )
    (result,) = admin.describe_configs(request, None).results
    return {entry.name: (entry.value, entry.config_source) for entry in result.configs}


def test_incremental_set_changes_only_the_named_keys_and_describe_shows_them_set_on_the_topic():
    admin = _admin(cleanup_policy="compact", retention_ms="-1", max_message_bytes="2000000")

    assert _incremental(
        admin, TOPIC, ("cleanup.policy", CONFIG_SET, "compact,delete"), ("retention.ms", CONFIG_SET, "5356800000")
    ) == (errors.NONE, None)

    described = _described(admin)
    assert described["cleanup.policy"] == ("compact,delete", DYNAMIC_TOPIC_CONFIG)
    assert described["retention.ms"] == ("5356800000", DYNAMIC_TOPIC_CONFIG)
    assert described["max.message.bytes"] == ("2000000", DYNAMIC_TOPIC_CONFIG)
    assert described["segment.ms"][1] == DEFAULT_CONFIG


def test_incremental_delete_returns_a_key_to_its_default():
    admin = _admin(retention_ms="1000")

    assert _incremental(admin, TOPIC, ("retention.ms", CONFIG_DELETE, None)) == (errors.NONE, None)

    assert _described(admin)["retention.ms"] == ("604800000", DEFAULT_CONFIG)


def test_an_unknown_key_or_a_bad_value_is_invalid_config_and_changes_nothing():
    admin = _admin(retention_ms="1000")

    error, message = _incremental(admin, TOPIC, ("retention.ms", CONFIG_SET, "5"), ("retension.ms", CONFIG_SET, "5"))
    assert (error, message) == (errors.INVALID_CONFIG, "unknown topic config name: retension.ms")
    error, message = _incremental(admin, TOPIC, ("retention.ms", CONFIG_SET, "a week"))
    assert error == errors.INVALID_CONFIG and "retention.ms must be an integer" in (message or "")
    error, message = _incremental(admin, TOPIC, ("retention.ms", CONFIG_SET, "-5"))
    assert error == errors.INVALID_CONFIG and "at least -1" in (message or "")
    error, message = _incremental(admin, TOPIC, ("cleanup.policy", CONFIG_SET, "compress"))
    assert error == errors.INVALID_CONFIG and "cleanup.policy" in (message or "")

    assert admin.store.topics[TOPIC].configs == {"retention.ms": "1000"}


def test_an_unknown_topic_is_unknown_topic_or_partition():
    assert _incremental(_admin(), "nope.v1", ("retention.ms", CONFIG_SET, "1000"))[0] == (
        errors.UNKNOWN_TOPIC_OR_PARTITION
    )


def test_alter_configs_replaces_the_whole_set():
    admin = _admin(cleanup_policy="compact", max_message_bytes="2000000")
    resource = AlterConfigsRequest.AlterConfigsResource
    request = AlterConfigsRequest(
        resources=[
            resource(
                resource_type=RESOURCE_TOPIC,
                resource_name=TOPIC,
                configs=[resource.AlterableConfig(name="retention.ms", value="1000")],
            )
        ],
        validate_only=False,
    )

    (response,) = admin.alter_configs(request, None).responses

    assert response.error_code == errors.NONE
    assert admin.store.topics[TOPIC].configs == {"retention.ms": "1000"}


def test_retention_uses_a_new_retention_from_the_change_on():
    admin = _admin(cleanup_policy="compact", retention_ms="-1", segment_bytes="1")
    partition = admin.store.topics[TOPIC].partitions[0]
    now = int(time.time() * 1000)
    append(partition, 3, timestamp=now - 10_000)
    append(partition, 3, timestamp=now)
    assert partition.enforce_retention(now) == 0  # compacted only, kept forever

    _incremental(admin, TOPIC, ("cleanup.policy", CONFIG_SET, "compact,delete"), ("retention.ms", CONFIG_SET, "1000"))

    assert partition.enforce_retention(now) == 1
    assert partition.log_start_offset == 3


def test_compaction_starts_when_a_topic_becomes_compacted():
    admin = _admin(segment_bytes="1")
    partition = admin.store.topics[TOPIC].partitions[0]
    append(partition, 3)
    append(partition, 3)
    assert partition.plan_cleaning(int(time.time() * 1000)) is None

    _incremental(admin, TOPIC, ("cleanup.policy", CONFIG_SET, "compact"))

    assert partition.plan_cleaning(int(time.time() * 1000)) is not None


def test_a_compacted_topic_made_delete_only_keeps_its_cleaned_records_across_a_restart(tmp_path):
    store = LogStore(str(tmp_path))
    store.load()
    store.create_topic(TOPIC, 1, {"cleanup.policy": "compact", "segment.bytes": "400"})
    admin = _Admin(store)
    partition = store.topics[TOPIC].partitions[0]
    fill(partition)
    assert partition.clean_now() is not None
    kept = all_records(partition)
    assert [offset for offset, *_ in kept] != list(range(len(kept)))  # compaction left offset gaps

    _incremental(admin, TOPIC, ("cleanup.policy", CONFIG_SET, "delete"))
    store.close()
    reopened = LogStore(str(tmp_path))
    reopened.load()

    assert all_records(reopened.topics[TOPIC].partitions[0]) == kept
    reopened.close()
