"""Fan-out of store changes to live watchers (SSE clients, gRPC ``WatchAlerts``) and to commands
waiting for their action to be applied.

The consumer hands every batch's changes to :meth:`ChangeHub.publish`. Changes carry a global,
gap-free ``seq``; the hub remembers the last one it delivered and, when a batch starts past it
(another replica wrote in between) or while the consumer is idle, reads the missing changes from
the store, so watchers see every change exactly once and in order whichever replica applied it.

Each watcher has a bounded queue. A watcher that falls behind is cut off (its queue is closed)
rather than slowing the others; it reconnects with its last cursor and replays from the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from madina.inputs import InvalidInput, echo
from services.operations.domain import AlertFilter, Change
from services.operations.store import AlertStore

log = logging.getLogger(__name__)

CATCH_UP_LIMIT = 500
MAX_CURSOR_DIGITS = 19
"""A cursor is a change seq (a 64-bit integer); longer digit strings are not ours."""


def parse_cursor(text: str, field: str) -> int:
    """The change seq a cursor stands for, or InvalidInput naming ``field``.

    ASCII digits only: ``str.isdigit`` also accepts ``"²"``, which ``int`` refuses.
    """
    if not (text.isascii() and text.isdigit() and len(text) <= MAX_CURSOR_DIGITS):
        raise InvalidInput(f"{field}: not a cursor: {echo(text)}")
    return int(text)


class WatcherTooSlow(Exception):
    """The watcher's queue overflowed; it must reconnect and resume from its last cursor."""


_CUT_OFF = object()
"""Queued in place of the backlog when a watcher overflows: it must reconnect from its cursor."""


@dataclass(eq=False)
class Subscription:
    """One live watcher: changes matching ``alert_filter`` after it subscribed, in seq order."""

    alert_filter: AlertFilter
    maxsize: int
    overflowed: bool = False
    _queue: asyncio.Queue[Any] = field(init=False)

    def __post_init__(self) -> None:
        # One slot more than the limit, for the cut-off marker.
        self._queue = asyncio.Queue(maxsize=self.maxsize + 1)

    def offer(self, change: Change) -> None:
        if self.overflowed or not self.alert_filter.matches(change.alert):
            return
        if self._queue.qsize() < self.maxsize:
            self._queue.put_nowait(change)
            return
        # Too slow: what it has not taken yet is dropped, since it will re-read it from the
        # store after reconnecting with the last cursor it did take.
        self.overflowed = True
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(_CUT_OFF)

    def close(self) -> None:
        if not self.overflowed:
            self.overflowed = True
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(_CUT_OFF)

    async def get(self, wait_s: float | None = None) -> Change | None:
        """The next change; ``None`` after ``wait_s`` seconds without one; WatcherTooSlow once cut off."""
        try:
            async with asyncio.timeout(wait_s):
                item = await self._queue.get()
        except TimeoutError:
            return None
        if item is _CUT_OFF:
            self._queue.put_nowait(_CUT_OFF)  # stays cut off for any later call
            raise WatcherTooSlow
        return item  # type: ignore[no-any-return]

    def pending(self) -> int:
        return self._queue.qsize()


class ChangeHub:
    """Delivers each change once, in seq order, to every subscription and action waiter."""

    def __init__(self, store: AlertStore, *, queue_size: int = 1000) -> None:
        self._store = store
        self._queue_size = queue_size
        self._subscriptions: set[Subscription] = set()
        self._action_waiters: dict[str, asyncio.Future[Change]] = {}
        self._lock = asyncio.Lock()
        self.last_seq = 0
        self.delivered = 0

    async def start(self) -> None:
        self.last_seq = await asyncio.to_thread(self._store.latest_seq)

    @property
    def watchers(self) -> int:
        return len(self._subscriptions)

    def subscribe(self, alert_filter: AlertFilter, maxsize: int | None = None) -> Subscription:
        subscription = Subscription(alert_filter, maxsize or self._queue_size)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def expect_action(self, action_id: str) -> asyncio.Future[Change]:
        """A future resolved with the change ``action_id`` makes; register before publishing the action."""
        future: asyncio.Future[Change] = asyncio.get_running_loop().create_future()
        self._action_waiters[action_id] = future
        return future

    def forget_action(self, action_id: str) -> None:
        self._action_waiters.pop(action_id, None)

    async def publish(self, changes: Sequence[Change]) -> None:
        """Deliver a batch's changes, first reading from the store any that came before them unseen."""
        async with self._lock:
            if changes and changes[0].seq > self.last_seq + 1:
                await self._catch_up(until=changes[0].seq - 1)
            self._deliver(changes)

    async def poll_store(self) -> None:
        """Deliver changes other writers made (another replica, a rebuild) since the last one seen."""
        async with self._lock:
            await self._catch_up(until=None)

    async def follow_store(self, interval_s: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.poll_store()
            except Exception:  # a database hiccup must not end the follower; the next poll retries
                log.exception("could not read new changes from the store")

    async def _catch_up(self, until: int | None) -> None:
        while until is None or self.last_seq < until:
            missing = await asyncio.to_thread(self._store.changes_since, self.last_seq, CATCH_UP_LIMIT)
            if until is not None:
                missing = [change for change in missing if change.seq <= until]
            if not missing:
                return
            self._deliver(missing)

    def _deliver(self, changes: Sequence[Change]) -> None:
        for change in changes:
            if change.seq <= self.last_seq:
                continue
            self.last_seq = change.seq
            self.delivered += 1
            for subscription in list(self._subscriptions):
                subscription.offer(change)
                if subscription.overflowed:
                    log.warning("slow watcher cut off; it resumes from its cursor", extra={"seq": change.seq})
                    self._subscriptions.discard(subscription)
            if change.action is not None:
                waiter = self._action_waiters.pop(change.action.action_id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(change)


class Watch:
    """Changes after a cursor (``None``: from now on), backlog then live, with no gap and no duplicate.

    It subscribes to live changes on construction, *before* the backlog is read, and later skips
    live changes the backlog already gave, so a change committed in between is seen exactly once.
    Construct it before telling the client it is watching; iterate :meth:`changes`.
    """

    def __init__(
        self, hub: ChangeHub, store: AlertStore, alert_filter: AlertFilter, after_seq: int | None, *,
        maxsize: int | None = None,
    ) -> None:
        self._hub = hub
        self._store = store
        self._filter = alert_filter
        self._subscription = hub.subscribe(alert_filter, maxsize)
        self._replay = after_seq is not None
        self.last_seq = after_seq if after_seq is not None else hub.last_seq

    async def changes(self, heartbeat_s: float | None = None) -> AsyncIterator[Change | None]:
        """Changes, and ``None`` after each ``heartbeat_s`` without one; WatcherTooSlow when cut off."""
        try:
            if self._replay:
                while True:
                    backlog = await asyncio.to_thread(
                        self._store.changes_since, self.last_seq, CATCH_UP_LIMIT
                    )
                    for change in backlog:
                        self.last_seq = change.seq
                        if self._filter.matches(change.alert):
                            yield change
                    if len(backlog) < CATCH_UP_LIMIT:
                        break
            while True:
                live = await self._subscription.get(heartbeat_s)
                if live is None:
                    yield None
                elif live.seq > self.last_seq:
                    self.last_seq = live.seq
                    yield live
        finally:
            self.close()

    def close(self) -> None:
        self._hub.unsubscribe(self._subscription)
