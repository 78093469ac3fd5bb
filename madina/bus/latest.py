"""The latest value per key, in memory, with watchers: what an API holds of a compacted status topic.

A domain's processor publishes each entity's status on a compacted topic; every API replica
reads it from the start (:func:`madina.bus.reader.read_topic`) and keeps the latest per key here,
so reads never touch Kafka and a watcher (a server-streaming RPC) gets each change as it arrives.
A slow watcher gets the newest value, not a backlog: its queue holds at most ``queue_size``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from typing import Generic, TypeVar

T = TypeVar("T")
ANY = ""  # watch every key


class LatestByKey(Generic[T]):
    def __init__(self, queue_size: int = 100) -> None:
        self.values: dict[str, T] = {}
        self._watchers: dict[str, set[asyncio.Queue[T]]] = defaultdict(set)
        self._queue_size = queue_size

    def get(self, key: str) -> T | None:
        return self.values.get(key)

    def put(self, key: str, value: T) -> None:
        self.values[key] = value
        for queue in (*self._watchers.get(key, ()), *self._watchers.get(ANY, ())):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(value)

    def watch(self, key: str = ANY) -> asyncio.Queue[T]:
        """A queue of the values put under ``key`` from now on (every key's with ``ANY``)."""
        queue: asyncio.Queue[T] = asyncio.Queue(maxsize=self._queue_size)
        self._watchers[key].add(queue)
        return queue

    def unwatch(self, key: str, queue: asyncio.Queue[T]) -> None:
        self._watchers[key].discard(queue)
