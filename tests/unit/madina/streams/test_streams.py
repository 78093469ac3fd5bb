"""The faust producer every processor uses is idempotent, so a broker failover cannot store a
retried alert twice (faust turns idempotence on only inside transactions)."""

from __future__ import annotations

from madina.settings import MadinaSettings
from madina.streams import FETCH_MAX_WAIT_MS, create_stream_app


async def test_the_processor_producer_is_idempotent_with_acks_all() -> None:
    app = create_stream_app("idempotence-check", MadinaSettings(), web_port=18999)
    producer = app.producer._new_producer()  # the aiokafka producer, not started: no broker needed
    assert producer._txn_manager is not None, "enable_idempotence is off"
    assert producer.client is not None
    assert producer._sender._txn_manager is producer._txn_manager


async def test_the_worker_consumer_waits_for_records_no_longer_than_the_short_fetch_wait() -> None:
    # faust hard-codes 1.5 s: a fetch of only quiet partitions then held every busy one that long.
    app = create_stream_app("fetch-wait-check", MadinaSettings(), web_port=18998)
    consumer = app._new_consumer()
    client = consumer._thread._create_worker_consumer(consumer.transport)  # not started: no broker needed
    assert client._fetch_max_wait_ms == FETCH_MAX_WAIT_MS == 100
