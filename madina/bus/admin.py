"""Create topics explicitly from the registry, so nothing depends on broker auto-creation, and
bring existing topics' declared configs up to date, so a release that changes a topic's cleanup
policy or retention reaches every deployment without an operator's hand.

Reconciling touches only the config keys a :class:`TopicSpec` declares (``topic_config()``): a
key an operator set by other means stays as it is, and partitions and replication are never
changed (a differing partition count is logged, since moving keys between partitions is an
operator's decision). Changes go out as IncrementalAlterConfigs SET operations, which leave
every other key alone; against a broker without that API (older than Kafka 2.3) they go out as
AlterConfigs, which replaces a topic's whole set, so the request then carries the topic's
current dynamic configs with the declared ones merged in. ``MADINA_TOPIC_CONFIG_RECONCILE=false``
(topics managed by other tooling) only logs the differences.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import IncompatibleBrokerVersion, KafkaConnectionError, TopicAlreadyExistsError
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Boolean, Int8, Int16, Int32, Schema, String

from madina.bus.topics import TopicSpec
from madina.settings import MadinaSettings, kafka_security_options, load_settings

log = logging.getLogger(__name__)

RESOURCE_TOPIC = 2  # Kafka's ConfigResource type for topics
DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs config_source of a value set on the topic itself
CONFIG_SET = 0  # IncrementalAlterConfigs operation


def admin_client(bootstrap: str, request_timeout_ms: int) -> AIOKafkaAdminClient:
    """The one way Madina builds an admin client, so the Kafka security settings reach it."""
    return AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=request_timeout_ms, **kafka_security_options()
    )


async def wait_for_broker(bootstrap: str, timeout_s: float = 30.0) -> None:
    """Return once a Kafka broker answers on ``bootstrap``; raise TimeoutError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        admin = admin_client(bootstrap, request_timeout_ms=3000)
        try:
            await admin.start()
            return
        except KafkaConnectionError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no Kafka broker answered on {bootstrap} within {timeout_s:.0f} s"
                ) from None
            await asyncio.sleep(0.2)
        finally:
            await admin.close()


async def ensure_topics(
    bootstrap: str,
    specs: Iterable[TopicSpec],
    *,
    default_partitions: int,
    replication_factor: int = 1,
    with_dead_letters: bool = True,
    reconcile_configs: bool | None = None,
) -> list[str]:
    """Create every topic of ``specs`` (and their dead-letter twins) that does not exist yet, and
    set the declared configs of those that do (see the module docstring).

    Returns the names created. ``reconcile_configs`` None reads ``MADINA_TOPIC_CONFIG_RECONCILE``;
    False only logs the differences. Partitions of existing topics are never changed: that would
    reshuffle keys, which is an operator's decision, not a start-up side effect.
    """
    wanted: dict[str, TopicSpec] = {}
    for spec in specs:
        wanted[spec.name] = spec
        if with_dead_letters:
            wanted[spec.dead_letter.name] = spec.dead_letter
    if reconcile_configs is None:
        reconcile_configs = load_settings(MadinaSettings).topic_config_reconcile
    admin = admin_client(bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        # Every existing topic is listed; one just created may still answer LEADER_NOT_AVAILABLE
        # and no partitions, so only a topic without error has a count worth comparing.
        listed = await admin.describe_topics()
        partition_counts = {entry["topic"]: len(entry["partitions"]) for entry in listed if entry["error_code"] == 0}
        names = {entry["topic"] for entry in listed}
        missing = [spec for name, spec in wanted.items() if name not in names]
        existing = {name: spec for name, spec in wanted.items() if name in names}
        for name, spec in existing.items():
            declared = spec.partitions or default_partitions
            if name in partition_counts and partition_counts[name] != declared:
                log.warning(
                    "topic %s has %d partitions, its declaration %d; left as it is (an operator's decision)",
                    name, partition_counts[name], declared,
                    extra={"topic": name, "partitions": partition_counts[name], "declared_partitions": declared},
                )
        if existing:
            await reconcile_topic_configs(admin, existing, apply=reconcile_configs)
        if not missing:
            return []
        return await _create_topics(admin, missing, default_partitions, replication_factor)
    finally:
        await admin.close()


async def _create_topics(
    admin: AIOKafkaAdminClient, missing: list[TopicSpec], default_partitions: int, replication_factor: int
) -> list[str]:
    new_topics = [
        NewTopic(
            name=spec.name,
            num_partitions=spec.partitions or default_partitions,
            replication_factor=replication_factor,
            topic_configs=spec.topic_config(),
        )
        for spec in missing
    ]
    try:
        response = await admin.create_topics(new_topics)
    except TopicAlreadyExistsError:
        response = None
    created = []
    for topic_error in getattr(response, "topic_errors", None) or getattr(response, "topics", None) or []:
        name, code = topic_error[0], topic_error[1]
        if code == 0:
            created.append(name)
        elif code != TopicAlreadyExistsError.errno:
            raise RuntimeError(f"could not create topic {name}: error code {code}")
    log.info("topics created", extra={"topics": created})
    return created


# ---- config reconciliation ----------------------------------------------------------------


@dataclass(frozen=True)
class ConfigChange:
    """One declared config key whose value on the broker differs from the declaration."""

    topic: str
    key: str
    old: str | None  # None: the broker reports no value for the key
    new: str


@dataclass(frozen=True)
class TopicConfigs:
    """A topic's configs as DescribeConfigs reports them."""

    in_effect: dict[str, str]  # every key with its value, defaults included
    set_on_topic: dict[str, str]  # only the keys set on the topic itself (DYNAMIC_TOPIC_CONFIG)


def _same_value(key: str, current: str | None, declared: str) -> bool:
    if current is None:
        return False
    if key == "cleanup.policy":  # a list: "compact,delete" and "delete,compact" are one policy
        return {item.strip() for item in current.split(",")} == {item.strip() for item in declared.split(",")}
    return current == declared


def config_changes(topic: str, declared: Mapping[str, str], in_effect: Mapping[str, str]) -> list[ConfigChange]:
    """The declared keys whose value in effect differs, in key order; keys not declared are no concern."""
    return [
        ConfigChange(topic, key, in_effect.get(key), value)
        for key, value in sorted(declared.items())
        if not _same_value(key, in_effect.get(key), value)
    ]


def alter_configs_replacement(current: TopicConfigs, changes: Iterable[ConfigChange]) -> dict[str, str]:
    """The full set an AlterConfigs request must carry so only ``changes`` change.

    AlterConfigs replaces a topic's dynamic configs: a key left out returns to its default. So
    the request carries every key set on the topic, with the changed ones' new values.
    """
    return {**current.set_on_topic, **{change.key: change.new for change in changes}}


async def reconcile_topic_configs(
    admin: AIOKafkaAdminClient, specs: Mapping[str, TopicSpec], *, apply: bool = True
) -> list[ConfigChange]:
    """Set each existing topic's declared config keys that differ to their declared values.

    Returns the differences found (applied or, with ``apply`` False, only logged). A topic whose
    configs cannot be read or changed (say the principal lacks the ACL) is logged as an error and
    left as it is: start-up goes on, since the topic exists and works with its old settings.
    """
    if not specs:
        return []
    described = await describe_topic_configs(admin, list(specs))
    changes_by_topic: dict[str, list[ConfigChange]] = {}
    for name, spec in specs.items():
        current = described.get(name)
        if current is None:
            continue
        changes = config_changes(name, spec.topic_config(), current.in_effect)
        if changes:
            changes_by_topic[name] = changes
    found = [change for changes in changes_by_topic.values() for change in changes]
    if not apply:
        for change in found:
            log.warning(
                "topic %s: config %s is %s, declared %s; not changed (MADINA_TOPIC_CONFIG_RECONCILE=false)",
                change.topic, change.key, change.old, change.new,
                extra={"topic": change.topic, "key": change.key, "old": change.old, "new": change.new},
            )
        return found
    if not changes_by_topic:
        return []
    failed = await _alter_topic_configs(admin, changes_by_topic, described)
    for change in found:
        if change.topic in failed:
            continue
        log.info(
            "topic %s: config %s changed from %s to %s, as declared",
            change.topic, change.key, change.old, change.new,
            extra={"topic": change.topic, "key": change.key, "old": change.old, "new": change.new},
        )
    return found


async def describe_topic_configs(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, TopicConfigs]:
    """DescribeConfigs of ``topics``; a topic the broker answers with an error is logged and left out."""
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in topics]
    described: dict[str, TopicConfigs] = {}
    for response in await admin.describe_configs(resources):
        by_source = response.API_VERSION >= 1  # v0 says is_default instead of the source
        for error_code, error_message, _type, name, entries in response.resources:
            if error_code != 0:
                log.error(
                    "topic %s: cannot read its configs (error %d: %s); left as it is",
                    name, error_code, error_message,
                    extra={"topic": name, "error_code": error_code},
                )
                continue
            in_effect: dict[str, str] = {}
            set_on_topic: dict[str, str] = {}
            for entry in entries:
                key, value, _read_only, source_or_default = entry[0], entry[1], entry[2], entry[3]
                if value is None:
                    continue
                in_effect[key] = value
                if (source_or_default == DYNAMIC_TOPIC_CONFIG) if by_source else not source_or_default:
                    set_on_topic[key] = value
            described[name] = TopicConfigs(in_effect, set_on_topic)
    return described


async def _alter_topic_configs(
    admin: AIOKafkaAdminClient,
    changes_by_topic: Mapping[str, list[ConfigChange]],
    described: Mapping[str, TopicConfigs],
) -> set[str]:
    """Send the changes; return the topics whose change the broker refused (logged here)."""
    try:
        responses = [await _send_to_any_broker(admin, IncrementalAlterConfigsRequest(changes_by_topic))]
    except IncompatibleBrokerVersion:
        replacement = [
            ConfigResource(
                ConfigResourceType.TOPIC, name, alter_configs_replacement(described[name], changes)
            )
            for name, changes in changes_by_topic.items()
        ]
        responses = await admin.alter_configs(replacement)
    failed: set[str] = set()
    for response in responses:
        for error_code, error_message, _type, name in response.resources:
            if error_code != 0:
                failed.add(name)
                log.error(
                    "topic %s: the broker refused its declared configs %s (error %d: %s); left as it is",
                    name, {change.key: change.new for change in changes_by_topic.get(name, [])},
                    error_code, error_message,
                    extra={"topic": name, "error_code": error_code},
                )
    return failed


async def _send_to_any_broker(admin: AIOKafkaAdminClient, request: Request) -> Response:
    # aiokafka's admin has no public way to send a request it does not wrap; its own
    # alter_configs sends topic resources the same way (any broker; KRaft forwards them).
    return await admin._send_request(request)


# aiokafka 0.14 has no IncrementalAlterConfigs (API 44); v0 is the version every broker since
# Kafka 2.3 answers, Kafka 4 included, and needs no flexible encoding.
class IncrementalAlterConfigsResponse_v0(Response):
    API_KEY = 44
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "resources",
            Array(
                ("error_code", Int16),
                ("error_message", String("utf-8")),
                ("resource_type", Int8),
                ("resource_name", String("utf-8")),
            ),
        ),
    )


class IncrementalAlterConfigsRequest_v0(RequestStruct):
    API_KEY = 44
    API_VERSION = 0
    RESPONSE_TYPE = IncrementalAlterConfigsResponse_v0
    SCHEMA = Schema(
        (
            "resources",
            Array(
                ("resource_type", Int8),
                ("resource_name", String("utf-8")),
                (
                    "configs",
                    Array(
                        ("name", String("utf-8")),
                        ("config_operation", Int8),
                        ("value", String("utf-8")),
                    ),
                ),
            ),
        ),
        ("validate_only", Boolean),
    )


IncrementalAlterConfigsRequestStruct: TypeAlias = IncrementalAlterConfigsRequest_v0


class IncrementalAlterConfigsRequest(Request[IncrementalAlterConfigsRequestStruct]):
    """SET each change's key on its topic; aiokafka raises IncompatibleBrokerVersion before
    sending when the broker does not advertise API 44."""

    API_KEY = 44

    def __init__(self, changes_by_topic: Mapping[str, list[ConfigChange]], validate_only: bool = False):
        self._resources: list[Any] = [
            (RESOURCE_TOPIC, name, [(change.key, CONFIG_SET, change.new) for change in changes])
            for name, changes in changes_by_topic.items()
        ]
        self._validate_only = validate_only

    def build(
        self, request_struct_class: type[IncrementalAlterConfigsRequestStruct]
    ) -> IncrementalAlterConfigsRequestStruct:
        return request_struct_class(self._resources, self._validate_only)
