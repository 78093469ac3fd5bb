"""A feed reader that finds no broker says so and leaves no open client behind (it is retried)."""

from __future__ import annotations

import gc
import logging

import pytest
from aiokafka.errors import KafkaConnectionError

from madina.bus.reader import read_topic
from madina.bus.topics import TopicSpec
from madina.devservers.ports import free_port
from madina_proto.alerts.v1 import alerts_pb2


async def test_no_broker_raises_and_closes_the_consumer(caplog: pytest.LogCaptureFixture) -> None:
    spec = TopicSpec("alerts.v1", alerts_pb2.AlertEvent, key="alert_id", description="alerts")
    nobody = f"127.0.0.1:{free_port()}"
    for _ in range(2):  # as a follower retries
        with pytest.raises(KafkaConnectionError):
            await read_topic(nobody, spec, lambda key, value: None)
    gc.collect()  # aiokafka reports an unclosed client when it is collected
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and "Unclosed" in r.getMessage()]
