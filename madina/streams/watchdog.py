"""A faust worker that has input to read but reads nothing says so, with the state that explains why.

faust-streaming runs its aiokafka consumer in a thread of its own and gates fetching on several
flags (the partition paused by a rebalance and resumed after recovery, the consumer's flow, the
app's flow control, the fetcher service). When one of them stays in the wrong state the worker is
assigned, recovered and healthy-looking, yet its agents get nothing: alerts stop while ``/healthz``
says ok. faust's own detector (``stream_processing_timeout``) speaks only after five minutes and
without the flags.

Every ``interval_s`` the watchdog asks the broker for the end offsets of the worker's input
partitions and compares them with the offsets its streams last read. A partition with records
left whose read offset has not moved for ``stall_s`` -- while no rebalance or recovery runs -- is
logged as a warning with every gate's state, counted as stalled in
:attr:`ConsumptionWatchdog.stalled` (``/healthz`` reports it), and healed in two steps:

1. every gate re-opened as faust's own end of recovery does (stream partitions resumed, flow
   resumed, fetcher started), then a seek to the committed offsets;
2. still stalled ``stall_s`` later: the consumer asks the group to rebalance, which re-runs
   assignment, recovery and the seek from scratch.

Both re-deliver at most records after the committed offsets, which the entity runner's offset
guard skips when already applied: a heal can repeat work but never an alert.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

log = logging.getLogger(__name__)


class ConsumptionWatchdog:
    def __init__(self, app: Any, input_topics: Collection[str], *, stall_s: float = 15.0,
                 interval_s: float = 5.0, busy: Callable[[], bool] = lambda: False) -> None:
        self.app = app
        # The agent may hold its records on purpose (reading alerts.v1 at start or after a
        # rebalance, which takes longer with a longer topic): that is work, not a stall.
        self.busy = busy
        self.input_topics = frozenset(input_topics)
        self.stall_s = stall_s
        self.stalled: set[Any] = set()
        # Per partition: the read offset last seen and when it last moved (or lag began).
        self._progress: dict[Any, tuple[int | None, float]] = {}
        self._heals = 0  # steps taken against the current stall
        self._healed_at = 0.0
        app.timer(interval=interval_s)(self.check)

    def _settled(self) -> bool:
        app = self.app
        return (not app.rebalancing and not app.in_recovery
                and app.tables.recovery.completed.is_set())

    async def check(self) -> None:
        if not self._settled() or self.busy():
            self._progress.clear()
            return
        consumer = self.app.consumer
        assigned = [tp for tp in self.app.assignor.assigned_actives() if tp.topic in self.input_topics]
        if not assigned:
            self._progress.clear()
            return
        try:
            ends = await asyncio.wait_for(consumer.highwaters(*assigned), timeout=5.0)
        except Exception as error:  # a consumer thread that cannot answer is itself the finding
            log.warning("consumption watchdog could not read end offsets", extra={
                "error": repr(error), **consumer_state(self.app, assigned)})
            return
        now = time.monotonic()
        for tp in assigned:
            read = consumer._read_offset.get(tp)
            end = ends.get(tp)
            behind = end is not None and end > (read + 1 if read is not None else 0)
            last_read, since = self._progress.get(tp, (None, now))
            if not behind or read != last_read:
                self._progress[tp] = (read, now)
                self.stalled.discard(tp)
                continue
            self._progress[tp] = (last_read, since)
            if now - since >= self.stall_s and tp not in self.stalled:
                self.stalled.add(tp)
                log.warning("input partition stalled: records to read, none read", extra={
                    "partition": f"{tp.topic}:{tp.partition}", "read_offset": read, "end_offset": end,
                    "stalled_s": round(now - since, 1), **consumer_state(self.app, [tp])})
        if not self.stalled:
            self._heals = 0
        elif self._heals == 0:
            self._heals, self._healed_at = 1, now
            await self._heal(self._reopen_gates)
        elif self._heals == 1 and now - self._healed_at >= self.stall_s:
            self._heals, self._healed_at = 2, now
            await self._heal(self._rebalance)
        elif self._heals == 2 and now - self._healed_at >= 2 * self.stall_s:
            self._heals = 3  # said once: what is left for the operator is a restart
            log.error("input partitions still stalled after a rebalance", extra={
                "partitions": sorted(f"{tp.topic}:{tp.partition}" for tp in self.stalled),
                **consumer_state(self.app, self.stalled)})

    async def _heal(self, step: Callable[[], Awaitable[None]]) -> None:
        try:
            await step()
        except Exception:  # a timer that raises would stop the worker: the cure must not kill
            log.exception("healing a stalled consumer failed", extra={"step": step.__name__})

    async def _reopen_gates(self) -> None:
        app, consumer = self.app, self.app.consumer
        log.warning("stalled: re-opening the consumer's gates and seeking to the committed offsets")
        consumer.resume_partitions({tp for tp in consumer.assignment() if not consumer._is_changelog_tp(tp)})
        app.flow_control.resume()
        consumer.resume_flow()
        await app._fetcher.maybe_start()
        await asyncio.wait_for(consumer.perform_seek(), timeout=30.0)

    async def _rebalance(self) -> None:
        log.warning("still stalled: asking the consumer group to rebalance")
        thread = self.app.consumer._thread
        thread.thread_loop.call_soon_threadsafe(thread._ensure_consumer()._coordinator.request_rejoin)


def consumer_state(app: Any, tps: Collection[Any]) -> dict[str, Any]:
    """The gates between a partition's records and its agent, read without waiting on anything.

    Read from the main thread while the consumer thread runs: a debugging snapshot, not a
    consistent one."""
    consumer = app.consumer
    state: dict[str, Any] = {}

    def put(name: str, read: Any) -> None:
        try:
            state[name] = read()
        except Exception as error:  # a private attribute of another version: say so, go on
            state[name] = f"unreadable: {error!r}"

    def tp_names(tps: Any) -> list[str] | None:
        return None if tps is None else sorted(f"{tp.topic}:{tp.partition}" for tp in tps)

    put("generation", lambda: app.consumer_generation_id)
    put("assignment", lambda: tp_names(consumer.assignment()))
    put("paused", lambda: tp_names(consumer._paused_partitions))
    put("active", lambda: tp_names(consumer._active_partitions))
    put("buffered", lambda: tp_names(consumer._buffered_partitions))
    put("flow_active", lambda: consumer.flow_active)
    put("flow_control_active", lambda: app.flow_control.is_active())
    put("fetcher", lambda: f"{app._fetcher.state} should_stop={app._fetcher.should_stop}")
    put("consumer_thread", lambda: consumer._thread.state)
    put("committed", lambda: {f"{tp.topic}:{tp.partition}": consumer._committed_offset.get(tp) for tp in tps})

    def aiokafka_partitions() -> dict[str, Any]:
        from aiokafka import TopicPartition

        assignment = consumer._thread._ensure_consumer()._fetcher._subscriptions.subscription.assignment
        described = {}
        for tp in tps:
            tp_state = assignment.state_value(TopicPartition(tp.topic, tp.partition))
            described[f"{tp.topic}:{tp.partition}"] = None if tp_state is None else {
                "paused": tp_state.paused,
                "position": tp_state.position if tp_state.has_valid_position else None,
                "awaiting_reset": tp_state.awaiting_reset,
                "highwater": tp_state.highwater,
            }
        return described

    put("aiokafka", aiokafka_partitions)
    return state
