"""Reading a topic's configs in tests, on either broker, through confluent-kafka's admin client."""

from __future__ import annotations

import time

from confluent_kafka.admin import AdminClient, ConfigEntry, ConfigResource


def describe_topic(admin: AdminClient | str, topic: str) -> dict[str, ConfigEntry]:
    """The topic's configs by key; ``admin`` may be a bootstrap address."""
    client = AdminClient({"bootstrap.servers": admin}) if isinstance(admin, str) else admin
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return client.describe_configs([resource])[resource].result(15)


def describe_once_applied(admin: AdminClient | str, topic: str, expected: dict[str, str]) -> dict[str, ConfigEntry]:
    """The topic's configs once they show ``expected`` (or after 15 s: the assertions that follow say
    what differs). A KRaft broker applies a change from its metadata log after acknowledging it, so
    a read right after a change can still show the old value."""
    deadline = time.monotonic() + 15
    while True:
        described = describe_topic(admin, topic)
        if all(key in described and described[key].value == value for key, value in expected.items()):
            return described
        if time.monotonic() > deadline:
            return described
        time.sleep(0.1)
