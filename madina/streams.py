"""faust-streaming apps configured the way every Madina stream processor needs them.

:func:`create_stream_app` sets what we measured and learned (see shared NOTES.md): topics are
declared from the registry, offsets start at the earliest record, acks=all, a short linger and
commit interval, and a session timeout short enough that a dead worker's partitions move within
seconds. It also closes two gaps in faust's at-least-once guarantee, described at
:func:`_drain_before_commit` and :class:`KeepLiveEventsFlowControl`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent

from madina.settings import MadinaSettings

log = logging.getLogger(__name__)


class KeepLiveEventsFlowControl(FlowControlEvent):
    """faust's flow control, except that ``resume()`` while already flowing drops nothing.

    Every stream and channel queue is registered with ``clear_on_resume=True``, so each
    ``resume()`` empties them: events buffered while the flow was *suspended* belong to an old
    assignment and will be read again from the committed offsets. But faust-streaming 0.15.3
    also calls ``resume()`` when the flow is already running. ``Recovery.on_recovery_completed``
    first resumes the stream partitions in the consumer, then awaits ``perform_seek()`` (one
    OffsetFetch per partition, through the consumer thread), and only then calls
    ``app.flow_control.resume()`` -- while the flow has been active since changelog recovery
    began. Records fetched during the seek are already in the agent's queue and the consumer's
    position is past them; the clear silently drops them and no seek brings them back (with no
    committed offset, ``seek_to_committed`` does not seek at all). The agent then sees a jump in
    offsets, and faust never commits that partition again because its acked offsets have a gap
    (faust-streaming/faust#596, still open). A kill -9 and restart lost 20-55 records per
    partition that way about one run in four.

    A resume that changes nothing (the flow was not suspended) has nothing stale to discard, so
    here it keeps the queues; suspending and ``clear()`` (used on partition revocation) are
    unchanged.
    """

    def resume(self) -> None:
        if self.is_active():
            buffered = sum(queue.qsize() for queue in self._queues)
            if buffered:
                log.info("flow control already active: keeping %d buffered events", buffered)
            return
        super().resume()


class StreamApp(faust.App):
    """A faust App with :class:`KeepLiveEventsFlowControl` and a producer that drains before commits."""

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return KeepLiveEventsFlowControl(loop=self.loop)

    def _new_producer(self) -> Any:
        # Patched at creation, not in a task: tasks start only after recovery, and the first
        # commits right after recovery must already wait for the changelog.
        producer = super()._new_producer()
        _drain_before_commit(producer.buffer)
        return producer


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
    return StreamApp(app_id, **options)


def _drain_before_commit(buffer: Any) -> None:
    """Make faust's pre-commit flush wait until table changelog writes have really been sent.

    faust commits a source offset only after ``producer.flush()``, so a table's changelog should
    always be at least as far as the committed input. But its buffer flush gives up after 0.1 s
    without a send (``ProducerBuffer.flush_atmost``), so under load an offset can be committed
    while the changelog record for it still sits in the buffer; a kill -9 then restores a table
    that lacks records the consumer will never read again. Draining until empty closes that.
    """
    flush_some = buffer.flush_atmost

    async def drain() -> None:
        while buffer.size:
            await flush_some(None)  # type: ignore[arg-type]
            if buffer.size:
                await asyncio.sleep(0)

    buffer.flush = drain  # type: ignore[method-assign]
