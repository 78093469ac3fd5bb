"""Where aiomqtt leaves the gateway's incoming messages, taken out a whole batch at a time.

aiomqtt puts each message paho decodes into its client's queue (``Client(queue_type=...)``) and
hands them out one by one through ``client.messages``, whose every step creates a task and an
``asyncio.wait`` on the queue and the connection: measured at about 10% of the gateway's CPU per
message, for messages the gateway then regroups into batches anyway. :class:`Inbox` is that queue
kept as a plain deque: aiomqtt's ``put_nowait`` appends, and the gateway takes up to a batch at
once, waiting (once per batch, not per message) only when it is empty or still filling.

``client.messages`` stays the way to learn that the connection ended: with every message
diverted here its queue is always empty, so iterating it only ever raises aiomqtt's MqttError.
"""

from __future__ import annotations

import asyncio
from collections import deque

import aiomqtt


class Inbox(asyncio.Queue[aiomqtt.Message]):
    """aiomqtt's message queue, as a FIFO the gateway drains in batches (arrival order kept)."""

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self._messages: deque[aiomqtt.Message] = deque()
        self._wanted = 0
        self._enough: asyncio.Future[None] | None = None

    def put_nowait(self, item: aiomqtt.Message) -> None:
        self._messages.append(item)
        if self._enough is not None and len(self._messages) >= self._wanted and not self._enough.done():
            self._enough.set_result(None)

    def qsize(self) -> int:
        return len(self._messages)

    async def take(self, most: int, fill_wait_s: float, connection: asyncio.Task[None]) -> list[aiomqtt.Message]:
        """Waits for a message, then up to ``fill_wait_s`` for ``most`` of them; returns at most ``most``.

        ``connection`` is a task that ends only with the connection (its exception is raised here)."""
        if not self._messages:
            await self._until(1, None, connection)
        if len(self._messages) < most and fill_wait_s > 0:
            await self._until(most, fill_wait_s, connection)
        return [self._messages.popleft() for _ in range(min(most, len(self._messages)))]

    async def _until(self, count: int, timeout_s: float | None, connection: asyncio.Task[None]) -> None:
        self._wanted = count
        self._enough = asyncio.get_running_loop().create_future()
        try:
            done, _ = await asyncio.wait({self._enough, connection}, timeout=timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._enough.cancel()
            self._enough = None
        if connection in done:
            connection.result()  # raises the error that ended the connection
            raise aiomqtt.MqttError("message stream ended")
