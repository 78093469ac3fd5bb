"""The faust producer every processor uses is idempotent, so a broker failover cannot store a
retried alert twice (faust turns idempotence on only inside transactions)."""

from __future__ import annotations

from madina.settings import MadinaSettings
from madina.streams import create_stream_app


async def test_the_processor_producer_is_idempotent_with_acks_all() -> None:
    app = create_stream_app("idempotence-check", MadinaSettings(), web_port=18999)
    producer = app.producer._new_producer()  # the aiokafka producer, not started: no broker needed
    assert producer._txn_manager is not None, "enable_idempotence is off"
    assert producer.client is not None
    assert producer._sender._txn_manager is producer._txn_manager
