"""The mobility topics are created on a real broker with the lifetimes their specs declare."""

from __future__ import annotations

from confluent_kafka.admin import AdminClient, ConfigResource

from madina.bus.admin import ensure_topics
from services.mobility.topics import ALL, RIDERSHIP, RIDERSHIP_VALIDATIONS


async def test_ridership_topics_are_created_with_their_cleanup_and_retention(broker: str) -> None:
    await ensure_topics(broker, ALL, default_partitions=1)
    admin = AdminClient({"bootstrap.servers": broker})
    for spec in (RIDERSHIP, RIDERSHIP_VALIDATIONS):
        resource = ConfigResource(ConfigResource.Type.TOPIC, spec.name)
        described = admin.describe_configs([resource])[resource].result(10)
        assert described["cleanup.policy"].value == spec.cleanup_policy, spec.name
        assert described["retention.ms"].value == str(spec.retention_ms), spec.name
    assert RIDERSHIP.cleanup_policy == "compact,delete"
