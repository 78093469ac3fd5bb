"""faust-streaming apps configured the way every Madina stream processor needs them.

:func:`create_stream_app` sets what we measured and learned (see shared NOTES.md): topics are
declared from the registry, offsets start at the earliest record, acks=all, a short linger and
commit interval, and a session timeout short enough that a dead worker's partitions move within
seconds. It also closes two gaps in faust's at-least-once guarantee, described at
:func:`_drain_before_commit` and :class:`KeepLiveEventsFlowControl`. :class:`ExactlyOnceAlerts`
turns a processor's alert transitions into AlertEvents on ``alerts.v1`` exactly once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, MutableMapping
from typing import Any, cast

import faust
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent

from madina.bus.alert_events import AlertLedger, AlertOutbox
from madina.bus.codec import encode, standard_headers
from madina.bus.signing import signed
from madina.bus.topics import ALERTS
from madina.runtime import freeze_startup_heap
from madina.settings import MadinaSettings
from madina_proto.alerts.v1 import alerts_pb2

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
    """A faust App with :class:`KeepLiveEventsFlowControl`, a producer that drains before commits,
    and hooks that finish held work before faust waits for every taken record's acknowledgement."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._before_wait_empty: list[Callable[[], Awaitable[None]]] = []

    def before_wait_empty(self, finish: Callable[[], Awaitable[None]]) -> None:
        """Run ``finish`` when a rebalance or a stop has stopped the flow, before faust waits until
        every record taken is acknowledged: an agent that acknowledges records in batches must end
        its batch there, because its timers stop with the app and no record will come to end it."""
        self._before_wait_empty.append(finish)

    async def _consumer_wait_empty(self, consumer: Any, logger: Any) -> None:
        for finish in self._before_wait_empty:
            await finish()
        await super()._consumer_wait_empty(consumer, logger)

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return KeepLiveEventsFlowControl(loop=self.loop)

    def _new_consumer(self) -> Any:
        consumer = super()._new_consumer()
        _seek_uncommitted_to_beginning(consumer)
        _shorten_fetch_wait(consumer)
        return consumer

    def _new_producer(self) -> Any:
        # Patched at creation, not in a task: tasks start only after recovery, and the first
        # commits right after recovery must already wait for the changelog.
        producer = super()._new_producer()
        _drain_before_commit(producer.buffer)
        # faust makes its aiokafka producer idempotent only inside transactions. Without it, a
        # batch whose acknowledgement is lost when a Kafka leader dies is sent again to the new
        # leader and stored twice: an alert revision doubled by a broker failover (seen on the
        # three-node cluster test). The instance attribute shadows the transport's method.
        producer._settings_extra = lambda: {"acks": "all", "enable_idempotence": True}  # type: ignore[attr-defined]
        return producer


def create_stream_app(
    app_id: str, settings: MadinaSettings, *, web_port: int, web_host: str = "127.0.0.1", **overrides: Any
) -> StreamApp:
    options: dict[str, Any] = {
        "broker": [f"kafka://{host}" for host in settings.bootstrap_servers.split(",")],
        "store": "memory://",
        "topic_partitions": settings.topic_partitions,
        "topic_replication_factor": settings.topic_replication_factor,
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        "producer_linger_ms": 5,
        "producer_max_batch_size": 512 * 1024,
        "broker_commit_interval": 1.0,
        "broker_session_timeout": 10.0,
        "broker_heartbeat_interval": 3.0,
        "stream_buffer_maxsize": 8192,
        "web_enabled": True,
        "web_bind": web_host,
        "web_port": web_port,
        "web_in_thread": False,
        "broker_credentials": faust_broker_credentials(settings),
    }
    options.update(overrides)
    return StreamApp(app_id, **options)


def faust_broker_credentials(settings: MadinaSettings) -> faust.types.auth.CredentialsT | None:
    """The MADINA_KAFKA_* security settings in faust's terms, the same the aiokafka clients get."""
    options = settings.kafka_client_options()
    protocol = options.get("security_protocol", "PLAINTEXT")
    if protocol.startswith("SASL_"):
        # faust picks SASL_SSL when it is given a context and SASL_PLAINTEXT when it is not.
        return faust.SASLCredentials(
            username=options["sasl_plain_username"],
            password=options["sasl_plain_password"],
            ssl_context=options.get("ssl_context"),
            mechanism=options["sasl_mechanism"],
        )
    if protocol == "SSL":
        return faust.SSLCredentials(options["ssl_context"])
    return None


def run_worker(app: faust.App, settings: MadinaSettings) -> None:
    """Run ``app`` as a faust worker until it is stopped (SIGTERM/SIGINT)."""
    freeze_startup_heap()
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), override_logging=False)
    worker.execute_from_commandline()


# How long the broker may hold a fetch that finds no records (faust hard-codes 1.5 s).
FETCH_MAX_WAIT_MS = 100


def _shorten_fetch_wait(consumer: Any) -> None:
    """Make a fetch that finds nothing come back after FETCH_MAX_WAIT_MS, not faust's 1.5 s.

    aiokafka leaves out of its next fetch every partition whose fetched records the worker has
    not taken yet, and sends one fetch at a time per broker. When the worker falls behind for
    more than aiokafka's 0.1 s prefetch backoff (a burst of work: energy's hourly KPIs for every
    lamp), the next fetch asks only for the quiet topics (commands, clock ticks, faust's leader
    topic) and the broker holds it for the whole wait; meanwhile the busy partitions, taken by
    then, cannot be fetched. A 0.3 s burst became a 1.5 s pause of every input (seen in
    bench.energy: every telemetry partition idle behind a fetch of the quiet ones). With a short
    wait that pause is at most FETCH_MAX_WAIT_MS; an idle worker sends a few more empty fetches.
    """
    thread = consumer._thread
    create_worker_consumer = thread._create_worker_consumer

    def create_with_short_wait(transport: Any) -> Any:
        client = create_worker_consumer(transport)
        client._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return client

    thread._create_worker_consumer = create_with_short_wait


def _seek_uncommitted_to_beginning(consumer: Any) -> None:
    """Make faust's seek to the committed offsets also rewind the stream partitions that have none.

    faust seeks back to the committed offsets after every recovery, so records it fetched but lost
    while partitions were paused or re-assigned are read again. aiokafka seeks only partitions whose
    committed offset is above 0: a partition that a worker killed before its first commit leaves
    uncommitted stayed wherever the fetcher had got to, and the records before that position were
    never processed (seen in CI: position 720 of 720, nothing read, nothing committed). Such a
    partition starts again from its beginning, as ``auto_offset_reset=earliest`` means; the entity
    runner's offset guard skips what the stored states already hold.
    """
    from aiokafka import TopicPartition

    seek_to_committed = consumer.perform_seek

    async def perform_seek() -> None:
        await seek_to_committed()
        uncommitted = [tp for tp in consumer.assignment()
                       if not consumer._is_changelog_tp(tp) and not consumer._committed_offset.get(tp)]
        if uncommitted:
            await consumer._thread.seek_to_beginning(*(TopicPartition(tp.topic, tp.partition) for tp in uncommitted))
            for tp in uncommitted:
                consumer._read_offset[tp] = None

    consumer.perform_seek = perform_seek


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


class ExactlyOnceAlerts:
    """A faust processor's alert publishing, exactly once across kill -9, restarts and rebalances.

    faust is at-least-once, so a processor replays records after a crash; its deterministic alert
    logic then re-creates transitions with the same ``(alert_id, revision)``. This keeps each on
    ``alerts.v1`` once, without making the processor wait for acknowledgements:

    - the :class:`~madina.bus.alert_events.AlertLedger` skips revisions already published (it
      re-reads ``alerts.v1`` at start and after every rebalance);
    - each table value carries an outbox (:class:`~madina.bus.alert_events.AlertOutbox`) of the
      revisions not yet acknowledged when it was written, and after an assignment the new owner
      publishes those the topic lacks, before its first record or within a second when idle.

    The table's values are the domain's own; ``outbox_of`` and ``partitions_of`` say where a value
    keeps its outbox and which input partitions it was built from (standby copies of other
    workers' partitions must not be swept). In the agent: ``await alerts.start()`` once, then
    ``await alerts.take_over_if_reassigned()`` before each record's state is read, and
    ``await alerts.publish(outbox, events)`` before that state is written.
    """

    def __init__(
        self,
        app: faust.App,
        table: Any,
        *,
        domain: str,
        source: str,
        bootstrap: str,
        input_topics: Collection[str],
        outbox_of: Callable[[Mapping[str, Any]], MutableMapping[str, str] | None],
        partitions_of: Callable[[Mapping[str, Any]], set[int]],
    ) -> None:
        self.app = app
        self.table = table
        self.source = source
        self.bootstrap = bootstrap
        self.input_topics = frozenset(input_topics)
        self.outbox_of = outbox_of
        self.partitions_of = partitions_of
        self.ledger = AlertLedger(domain)
        self.outbox = AlertOutbox(self.ledger)
        self._ledger_lock = asyncio.Lock()
        self._takeover_lock = asyncio.Lock()
        self._started = asyncio.Event()
        self._swept: set[Any] | None = None
        self._actives_of: tuple[Any, set[Any]] = (None, set())  # (faust's assignment object, its active inputs)
        app.timer(interval=1.0)(self._take_over_when_idle)

    async def start(self) -> None:
        async with self._ledger_lock:
            await self.ledger.load(self.bootstrap)
            self.outbox.confirm_loaded()
        self._started.set()

    async def publish(self, outbox: MutableMapping[str, str], events: Iterable[alerts_pb2.AlertEvent]) -> None:
        """Send ``events`` and stage them in ``outbox`` (part of the state about to be written)."""
        self.outbox.prune(outbox)
        for event in events:
            if await self._send(event):
                AlertOutbox.stage(outbox, event)

    def busy(self) -> bool:
        """Whether the agent is held by start-up or a take-over (both read alerts.v1)."""
        return not self._started.is_set() or self._takeover_lock.locked()

    async def take_over_if_reassigned(self) -> None:
        assignment = self._active_assignment()
        if assignment != self._swept:
            await self._take_over(assignment)

    async def _send(self, event: alerts_pb2.AlertEvent) -> bool:
        async with self._ledger_lock:
            if self.ledger.already_published(event.alert_id, event.revision):
                return False
            self.ledger.record(event.alert_id, event.revision)
        key, value = event.alert_id.encode(), encode(event)
        headers = signed(ALERTS.name, key, value,
                         standard_headers(ALERTS, self.source, int(event.event_time.ToMilliseconds())))
        # Straight to the app's producer, as the entity runner's other outputs: through faust's
        # Topic.send an alert cost ~4x the CPU (bench.runner_micro: ~175 against ~42 us, the
        # aiokafka send included). Commits stay behind it: faust flushes
        # this producer (its aiokafka producer's every pending batch) before it commits offsets,
        # and a record is acknowledged only after its alerts were handed to the producer here.
        sent = cast(asyncio.Future, await self.app.producer.send(ALERTS.name, key, value, None, None, headers))
        alert_id, revision = event.alert_id, event.revision

        def acknowledged(future: asyncio.Future[Any]) -> None:
            if not future.cancelled() and future.exception() is None:
                self.outbox.confirm(alert_id, revision)
            else:
                # The ledger already counts it as sent, so only a restart's outbox sweep would send
                # it again: an alert missing from alerts.v1 must at least be visible in the log.
                log.error("alert send failed; left in the outbox", extra={
                    "alert_id": alert_id, "revision": revision,
                    "error": "cancelled" if future.cancelled() else repr(future.exception())})

        sent.add_done_callback(acknowledged)
        return True

    def _active_assignment(self) -> set[Any]:
        # Asked before every record. faust's assigned_actives() builds a new set of its assignment
        # object's partitions each time, and that object is replaced at each assignment, never
        # changed: the set is built again only when it was replaced.
        assignor = self.app.assignor
        current = getattr(assignor, "_assignment", None)
        if current is None or current is not self._actives_of[0]:
            self._actives_of = (current, {tp for tp in assignor.assigned_actives() if tp.topic in self.input_topics})
        return self._actives_of[1]

    async def _take_over(self, assignment: set[Any]) -> None:
        async with self._takeover_lock:
            if assignment == self._swept:
                return
            if self._swept is not None:  # a rebalance: others may have published since we last read the topic
                async with self._ledger_lock:
                    await self.ledger.load(self.bootstrap)
                    self.outbox.confirm_loaded()
            self._swept = assignment
            active = {tp.partition for tp in assignment}
            republished = 0
            for value in list(self.table.values()):
                outbox = self.outbox_of(value) if value else None
                if not outbox or not self.partitions_of(value) & active:
                    continue
                for event in self.outbox.unpublished(outbox):
                    republished += await self._send(event)
            log.info("outboxes swept", extra={"partitions": sorted(active), "republished_alerts": republished})

    async def _take_over_when_idle(self) -> None:
        # The agent takes over before its first record after an assignment; this covers a worker
        # whose partitions stay quiet after recovery.
        app = self.app
        ready = not app.rebalancing and not app.in_recovery and app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
        if ready and self._started.is_set():
            await self.take_over_if_reassigned()
