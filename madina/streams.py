"""faust-streaming apps configured the way every Madina stream processor needs them.

:func:`create_stream_app` sets what we measured and learned (see shared NOTES.md): topics are
declared from the registry, offsets start at the earliest record, acks=all, a short linger and
commit interval, and a session timeout short enough that a dead worker's partitions move within
seconds. It also closes a gap in faust's at-least-once guarantee, described at
:func:`_drain_before_commit`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust

from madina.settings import MadinaSettings


def create_stream_app(
    app_id: str, settings: MadinaSettings, *, web_port: int, web_host: str = "127.0.0.1", **overrides: Any
) -> faust.App:
    options: dict[str, Any] = {
        "broker": [f"kafka://{host}" for host in settings.bootstrap_servers.split(",")],
        "store": "memory://",
        "topic_partitions": settings.topic_partitions,
        "topic_replication_factor": settings.topic_replication_factor,
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        "producer_linger_ms": 5,
        "broker_commit_interval": 1.0,
        "broker_session_timeout": 10.0,
        "broker_heartbeat_interval": 3.0,
        "stream_buffer_maxsize": 8192,
        "web_enabled": True,
        "web_bind": web_host,
        "web_port": web_port,
        "web_in_thread": False,
    }
    options.update(overrides)
    app = faust.App(app_id, **options)

    @app.task
    async def _install_commit_guard() -> None:
        _drain_before_commit(app)

    return app


def _drain_before_commit(app: faust.App) -> None:
    """Make faust's pre-commit flush wait until table changelog writes have really been sent.

    faust commits a source offset only after ``producer.flush()``, so a table's changelog should
    always be at least as far as the committed input. But its buffer flush gives up after 0.1 s
    without a send (``ProducerBuffer.flush_atmost``), so under load an offset can be committed
    while the changelog record for it still sits in the buffer; a kill -9 then restores a table
    that lacks records the consumer will never read again. Draining until empty closes that.
    """
    buffer = app.producer.buffer
    flush_some = buffer.flush_atmost

    async def drain() -> None:
        while buffer.size:
            await flush_some(None)
            if buffer.size:
                await asyncio.sleep(0)

    buffer.flush = drain  # type: ignore[method-assign]
