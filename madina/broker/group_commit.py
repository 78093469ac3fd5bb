"""Group commit: acks=all produces wait for their bytes to be on disk, sharing fsync passes.

The partition logs only write (page cache); the store marks what was written as dirty, and a
produce that must be durable waits on ``SyncCoalescer.wait()``. Everything written before a pass
starts is fsynced by it, so one pass answers every produce that arrived meanwhile.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable


class SyncCoalescer:
    """Group commit: every caller waiting at once shares one fsync pass in a worker thread.

    A caller that arrives while a pass runs waits for the next pass, which starts as soon
    as the current one ends and covers everything written in between.
    """

    def __init__(self, take_dirty_fds: Callable[[], list[int]]):
        # The store's: descriptors written since the last pass, handed over (and forgotten) at once.
        self._take_dirty_fds = take_dirty_fds
        self._running: asyncio.Future | None = None
        self._next: asyncio.Future | None = None

    def wait(self) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        if self._next is None:
            self._next = loop.create_future()
            if self._running is None:
                self._start(loop)
        return self._next

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        done, self._next = self._next, None
        assert done is not None
        fds = self._take_dirty_fds()
        self._running = loop.run_in_executor(None, fsync_all, fds)
        self._running.add_done_callback(lambda finished: self._finished(loop, finished, done))

    def _finished(self, loop, finished: asyncio.Future, done: asyncio.Future) -> None:
        self._running = None
        error = finished.exception()
        if not done.done():
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)
        if self._next is not None:
            self._start(loop)


def fsync_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.fsync(fd)
        except OSError as error:
            # A segment deleted by retention while queued: nothing left to make durable.
            if error.errno != 9:
                raise
