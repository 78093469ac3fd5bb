"""Create topics explicitly from the registry, so nothing depends on broker auto-creation."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from madina.bus.topics import TopicSpec
from madina.settings import kafka_security_options

log = logging.getLogger(__name__)


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
) -> list[str]:
    """Create every topic of ``specs`` (and their dead-letter twins) that does not exist yet.

    Returns the names created. Existing topics are left as they are: changing partitions of a
    keyed topic would reshuffle keys, which is an operator's decision, not a start-up side effect.
    """
    wanted: dict[str, TopicSpec] = {}
    for spec in specs:
        wanted[spec.name] = spec
        if with_dead_letters:
            wanted[spec.dead_letter.name] = spec.dead_letter
    admin = admin_client(bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for name, spec in wanted.items() if name not in existing]
        if not missing:
            return []
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
    finally:
        await admin.close()
