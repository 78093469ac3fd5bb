"""The entity processor: a domain's pure step function run as a faust worker, exactly once for alerts.

A domain declares an :class:`EntityProcessor` -- its input topics (all keyed by the entity whose
state it keeps), how a record decodes, its step function, how its state serialises, the topics
its other outputs go to and an optional clock tick -- and :func:`create_entity_app` makes the
worker. Everything else is here, once:

- **One table, written once per batch**, keyed by entity id; its value is an
  :class:`EntityState`: the domain's state plus the input offsets it contains and the outbox of
  alert revisions not yet acknowledged (madina.streams.ExactlyOnceAlerts). Records are applied
  one by one as they come and their alerts and outputs leave at once, but an entity's state is
  written once per batch (BATCH_MAX_RECORDS records or BATCH_MAX_AGE_S, or sooner when a
  rebalance stops the flow), and only then are the batch's records acknowledged: faust commits
  only acknowledged offsets, after flushing the producer, so the changelog always holds the
  state of every committed record. A state of ~10 KB written per record cost more than the step
  itself; waiting for the batch delays no output, only the commit.
- **Alerts first, the rest in order behind them.** Alerts are sent as their record is applied.
  Snapshots, then at each batch's end its states and the acknowledgement of its records, go
  through one ordered queue (:class:`_Outbound`) whose sender gives the event loop back every
  OUTBOUND_CHUNK sends: a burst of snapshots (energy's hourly KPIs, ~2,300 records when every
  circuit closes its hour) used to hold the next records' alerts for hundreds of ms. The order
  per batch is unchanged (its snapshots, then its states, then its acks), so the rule above
  holds; more than OUTBOUND_MAX_BATCHES batches waiting and the agent sends them itself. They go
  straight to the app's producer, as alerts do (ExactlyOnceAlerts): through faust's
  ``Topic.send`` a record cost ~3-4x the CPU (bench.runner_micro, alerts: ~175 against ~42 us).
- **Offset guard for every record.** faust is at-least-once, and it can hand the same record to
  the agent twice even without a crash (events buffered during recovery are kept while the
  post-recovery seek fetches them again; see KeepLiveEventsFlowControl). A record is skipped when
  the state under its key already holds its offset -- dead-lettered records included, whose
  offset is stored the same way, so a poison record reaches the dead-letter topic once.
- **Poison.** A record that does not decode (:class:`~madina.contract.InvalidRecord`), whose key is
  not its entity, or that the step refuses goes to the topic's ``.dlq`` with the reason, before it
  can touch any state; parts of a record that the step refuses go there as their own records. A
  step that fails with anything else found a bug: logged in full, and the record is parked too.
- **Decoded-state cache.** The table holds plain dicts (its changelog carries JSON); decoding one
  costs more than a step, so the state object behind the dict last written is reused while the
  table still holds that very dict.
- ``/healthz`` and ``/metrics`` on the worker's web port, and the clock tick timer.

The step contract: ``step(state, record)`` returns a :class:`Step` (the new state, which may be
the same object changed in place, and what to publish). It raises ``InvalidRecord`` before it
changes ``state``. Alerts are published first, exactly once; other outputs are snapshots, sent
before the state is written and re-sent by a replay.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, cast

import faust
from faust.types import TP
from faust.web import Request, Response, View
from google.protobuf.message import Message

from madina.bus.alert_events import AlertOutbox
from madina.bus.codec import decode, encode, standard_headers
from madina.bus.producer import dead_letter_headers
from madina.bus.topics import TopicSpec
from madina.contract import InvalidRecord
from madina.observability.metrics import BUS_METRICS, metrics_response
from madina.settings import MadinaSettings
from madina.streams import ExactlyOnceAlerts, create_stream_app
from madina.streams.watchdog import ConsumptionWatchdog
from madina_proto.alerts.v1 import alerts_pb2

log = logging.getLogger(__name__)

S = TypeVar("S")  # the domain's state of one entity
Headers = Sequence[tuple[str, bytes]]
APPLIED_OFFSETS = "applied_offsets"
OUTBOX = "outbox"
_RUNNER_KEYS = frozenset({APPLIED_OFFSETS, OUTBOX})


@dataclass(frozen=True)
class EntityRecord:
    """One decoded input record, as the step sees it."""

    entity_id: str
    spec: TopicSpec  # the topic it came from: several inputs may share one step
    value: Any  # what the processor's ``decode`` returned (by default the protobuf message)
    now: datetime  # the processor's clock, for event-time bounds and watermarks


@dataclass
class Step(Generic[S]):
    """What one record did: the entity's new state and what to publish, in this order."""

    state: S
    alerts: Sequence[alerts_pb2.AlertEvent] = ()
    # Snapshots (status, KPIs, derived events) as (topic, key, message); the topic must be one of
    # the processor's ``outputs``.
    records: Sequence[tuple[TopicSpec, str, Message]] = ()
    # Parts of the record the step refused, as (reason, message of the input topic's type holding
    # just that part): each goes to the input topic's ``.dlq``.
    rejected: Sequence[tuple[str, Message]] = ()


@dataclass(frozen=True)
class Ticks:
    """A clock for entities that can change without input (data gaps): one tick record per entity
    every ``interval_s`` on ``topic`` (one of the inputs), sent by the group's leader only, so the
    tick goes through the entity's own stream and state like any record."""

    topic: TopicSpec
    interval_s: float
    make: Callable[[datetime], Iterable[tuple[str, Message]]]  # now -> (entity id, tick message)


def _decode_message(spec: TopicSpec, value: bytes | None, headers: Headers | None) -> Any:
    # The content type is required: topics of one domain often share a wire layout.
    return decode(spec, value, headers, require_type=True)


def _entity_field(spec: TopicSpec, value: Any) -> str:
    return str(getattr(value, spec.key))


@dataclass(frozen=True)
class EntityProcessor(Generic[S]):
    """What a domain supplies; :func:`create_entity_app` runs it.

    ``decode`` and ``entity_of`` have defaults for protobuf inputs: the topic's message (with its
    content-type header required), whose ``spec.key`` field names the entity.
    """

    app_id: str  # faust app id, consumer group and prefix of the table's changelog topic
    domain: str  # the alerts' domain (AlertLedger)
    source: str  # the producer name in every output's headers
    inputs: Sequence[TopicSpec]  # all keyed and partitioned by the same entity
    step: Callable[[S, EntityRecord], Step[S]]
    new_state: Callable[[str], S]  # entity id -> the state of an entity never seen
    state_to_dict: Callable[[S], dict[str, Any]]  # JSON-serialisable; keys applied_offsets/outbox are taken
    state_from_dict: Callable[[Mapping[str, Any], str], S]  # (dict, entity id) -> state
    outputs: Sequence[TopicSpec] = ()
    decode: Callable[[TopicSpec, bytes | None, Headers | None], Any] = _decode_message
    entity_of: Callable[[TopicSpec, Any], str] = _entity_field
    ticks: Ticks | None = None
    table: str = "entity-state"


@dataclass
class EntityState(Generic[S]):
    """The table value: the domain's state plus what the runner remembers for exactly-once.

    ``state`` is ``None`` for a key that only ever had dead-lettered records. As a dict the domain's
    keys sit beside ``applied_offsets`` and ``outbox``.
    """

    state: S | None
    applied_offsets: dict[str, int] = field(default_factory=dict)
    # Alert transitions published but not yet acknowledged when the state was written (see
    # madina.bus.alert_events.AlertOutbox): the state need not wait for alerts.v1.
    outbox: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any] | None, entity_id: str, state_from_dict: Callable[[Mapping[str, Any], str], S]
    ) -> EntityState[S]:
        if not data:
            return cls(None)
        domain = {key: value for key, value in data.items() if key not in _RUNNER_KEYS}
        return cls(
            state_from_dict(domain, entity_id) if domain else None,
            dict(data.get(APPLIED_OFFSETS, {})),
            dict(data.get(OUTBOX, {})),
        )

    def to_dict(self, state_to_dict: Callable[[S], dict[str, Any]]) -> dict[str, Any]:
        # Copies, never aliases: the table (and its lazily serialised changelog record) must not
        # change when this object is updated for the next record.
        domain = state_to_dict(self.state) if self.state is not None else {}
        return {**domain, APPLIED_OFFSETS: dict(self.applied_offsets), OUTBOX: dict(self.outbox)}

    def already_applied(self, topic: str, partition: int, offset: int) -> bool:
        return offset <= self.applied_offsets.get(f"{topic}:{partition}", -1)

    def mark_applied(self, topic: str, partition: int, offset: int) -> None:
        self.applied_offsets[f"{topic}:{partition}"] = offset


# A batch of applied records is written (each changed state once) and acknowledged at these
# bounds; the age matches the commit interval, so a commit waits at most one more interval.
BATCH_MAX_RECORDS = 1000
BATCH_MAX_AGE_S = 1.0
BATCH_IDLE_CHECK_S = 0.1


class _Batch(Generic[S]):
    """Records applied since the states were last written: the changed states (with the source
    partition whose changelog partition gets them), each entity's records, the events to ack."""

    def __init__(self) -> None:
        self.states: dict[str, tuple[EntityState[S], int]] = {}
        self.applied: dict[str, list[tuple[TopicSpec, Any]]] = {}
        self.events: list[Any] = []
        self.started = 0.0
        self.lock = asyncio.Lock()

    def add(self, event: Any) -> None:
        if not self.events:
            self.started = time.monotonic()
        self.events.append(event)

    def full(self) -> bool:
        return len(self.events) >= BATCH_MAX_RECORDS or time.monotonic() - self.started >= BATCH_MAX_AGE_S

    def clear(self) -> None:
        self.states = {}
        self.applied = {}
        self.events = []


# The outbound sender yields to the event loop after this many sends, so that records arriving
# during a burst of snapshots are applied (and their alerts sent) between its chunks.
OUTBOUND_CHUNK = 32
# Ended batches the sender may be behind by; past this the agent sends everything itself (in a
# backlog the agent keeps the loop busy, and the sender would only get it back at the end).
OUTBOUND_MAX_BATCHES = 2


class _Outbound:
    """What leaves after the agent applied its records, sent in the order it was handed over:
    snapshot records, and at each batch's end the batch's states (to the changelog) and then the
    acknowledgement of its records.

    One task sends, OUTBOUND_CHUNK records at a time, while the agent is between records;
    :meth:`flush` sends what is left at once (a stop, a rebalance, a sender too far behind). A
    send lock keeps the order when both do. Everything goes straight to the app's producer, whose
    flush faust awaits before it commits.
    """

    SNAPSHOT, STATE, ACK = range(3)

    def __init__(self, app: faust.App, source: str, on_state_sent: Callable[[Any], None]) -> None:
        self.app = app
        self.source = source
        self.on_state_sent = on_state_sent
        self.items: deque[tuple[Any, ...]] = deque()
        self.batches = 0  # ended batches not yet acknowledged
        self._sending = asyncio.Lock()
        self._wake = asyncio.Event()

    def snapshot(self, spec: TopicSpec, key: bytes, value: bytes) -> None:
        self.items.append((self.SNAPSHOT, spec, key, value))
        self._wake.set()

    async def end_batch(self, topic: str, states: Sequence[tuple[bytes, bytes, int]], events: list[Any]) -> None:
        self.items.extend((self.STATE, topic, key, value, partition) for key, value, partition in states)
        self.items.append((self.ACK, events))
        self.batches += 1
        self._wake.set()
        if self.batches > OUTBOUND_MAX_BATCHES:
            await self.flush()

    async def flush(self) -> None:
        """Send everything handed over so far, now."""
        async with self._sending:
            while self.items:
                await self._send_first()

    async def run(self) -> None:
        """The sender: an app task, so it starts with the worker and is cancelled when it stops."""
        try:
            while True:
                if not self.items:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                async with self._sending:
                    for _ in range(min(OUTBOUND_CHUNK, len(self.items))):
                        await self._send_first()
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the batch is not acknowledged: a restart replays it
            log.exception("sending a processor's outputs failed")
            await self.app.crash(error)

    async def _send_first(self) -> None:
        # Taken off the queue once sent: a sender cancelled inside a send (the worker stopping)
        # leaves the item for the final flush, rather than a state missing from the changelog.
        await self._send(self.items[0])
        self.items.popleft()

    async def _send(self, item: tuple[Any, ...]) -> None:
        producer = self.app.producer
        kind = item[0]
        if kind == self.SNAPSHOT:
            _, spec, key, value = item
            await producer.send(spec.name, key, value, None, None, standard_headers(spec, self.source))
        elif kind == self.STATE:
            _, topic, key, value, partition = item
            sent = cast(asyncio.Future, await producer.send(topic, key, value, partition, None, None))
            sent.add_done_callback(self.on_state_sent)
        else:
            for event in item[1]:
                event.ack()
            self.batches -= 1


def source_partitions(stored: Mapping[str, Any]) -> set[int]:
    """The input partitions a table value (as the table holds it) was built from."""
    return {int(key.rpartition(":")[2]) for key in stored.get(APPLIED_OFFSETS, {})}


def decode_entity_record(
    spec: TopicSpec,
    key: bytes | None,
    value: bytes | None,
    headers: Headers | None,
    decoder: Callable[[TopicSpec, bytes | None, Headers | None], Any] = _decode_message,
    entity_of: Callable[[TopicSpec, Any], str] = _entity_field,
) -> tuple[str, Any]:
    """``(entity id, decoded value)``, or InvalidRecord: not decodable, or not the entity under its key."""
    decoded = decoder(spec, value, headers)
    entity_id = entity_of(spec, decoded)
    if not entity_id or (key is not None and key.decode("utf-8", "replace") != entity_id):
        raise InvalidRecord(f"key {key!r:.200} does not match {spec.key} {entity_id[:200]!r}")
    return entity_id, decoded


def table_key(key: bytes | None) -> str:
    """Where the offset guard of a record keeps its state: its key (entity id) as text."""
    return "" if key is None else key.decode("utf-8", "replace")


def check_output(spec: TopicSpec, message: Message, outputs: Collection[str], app_id: str) -> None:
    """Refuse a snapshot its topic does not carry: the runner sends straight to the producer, past
    EventProducer's type check, and a topic declared with the wrong type once shipped silently
    (energy's district input decoded every record as the declared type and dead-lettered it)."""
    if spec.name not in outputs:
        raise KeyError(f"{spec.name} is not an output of {app_id}")
    if message.DESCRIPTOR is not spec.message_type.DESCRIPTOR:
        raise TypeError(f"{spec.name} carries {spec.message_type.DESCRIPTOR.full_name}, "
                        f"not {message.DESCRIPTOR.full_name}")


def create_entity_app(
    processor: EntityProcessor[S],
    settings: MadinaSettings,
    *,
    web_port: int,
    web_host: str = "127.0.0.1",
    trace: bool = False,
) -> faust.App:
    """The faust worker for ``processor``; ``trace`` logs a line per record it applies (tests)."""
    specs = {spec.name: spec for spec in processor.inputs}
    if processor.ticks is not None and processor.ticks.topic.name not in specs:
        raise ValueError(f"tick topic {processor.ticks.topic.name} is not an input of {processor.app_id}")
    app = create_stream_app(processor.app_id, settings, web_port=web_port, web_host=web_host)
    source = app.topic(*specs, key_serializer="raw", value_serializer="raw", partitions=settings.topic_partitions)
    # Keys and values use the app's default JSON serializer: state is plain dicts by design.
    table = app.Table(processor.table, default=None, partitions=settings.topic_partitions)
    sinks = {
        spec.name: app.topic(spec.name, key_serializer="raw", value_serializer="raw")
        for spec in (*processor.outputs, *(spec.dead_letter for spec in processor.inputs),
                     *([processor.ticks.topic] if processor.ticks else []))
    }
    alerts = ExactlyOnceAlerts(
        app, table, domain=processor.domain, source=processor.source, bootstrap=settings.bootstrap_servers,
        input_topics=specs, outbox_of=lambda value: value.get(OUTBOX), partitions_of=source_partitions,
    )
    watchdog = ConsumptionWatchdog(app, specs, busy=alerts.busy)
    decoded_states: dict[str, tuple[Any, EntityState[S]]] = {}
    batch = _Batch[S]()

    def stored_state(key: str) -> EntityState[S]:
        pending = batch.states.get(key)
        if pending is not None:
            return pending[0]
        current = table.get(key)
        cached = decoded_states.pop(key, None)
        if cached is not None and current is not None and cached[0] is current:
            return cached[1]
        return EntityState.from_dict(current, key, processor.state_from_dict)

    def write(key: str, stored: EntityState[S], spec: TopicSpec, message: Any) -> None:
        """Mark the record applied; the state itself is written with the batch (:func:`write_batch`)."""
        stored.mark_applied(message.topic, message.partition, message.offset)
        batch.states[key] = (stored, message.partition)
        batch.applied.setdefault(key, []).append((spec, message))

    def state_sent(sent: asyncio.Future[Any]) -> None:
        # What faust's own changelog send does when it is acknowledged (a persistent store keeps
        # the offset it holds data up to).
        if not sent.cancelled() and sent.exception() is None:
            metadata = sent.result()
            cast(Any, table).data.set_persisted_offset(TP(metadata.topic, metadata.partition), metadata.offset)

    outbound = _Outbound(app, processor.source, state_sent)
    app.task(outbound.run)

    async def write_batch() -> None:
        """Each changed state once, to its source partition's changelog, then the batch's records acked.

        Acked only then, behind the batch's snapshots (:class:`_Outbound` keeps the order): faust
        commits acked offsets after flushing the producer, so a committed offset always has its
        state on the changelog. The table's store gets the same dict now; the changelog record is
        serialised now too, so a state changed by the next records cannot leak into it.
        """
        changelog: Any = table  # faust's Collection: its serializers are untyped
        topic = changelog.changelog_topic
        states = []
        for key, (stored, partition) in batch.states.items():
            value = stored.to_dict(processor.state_to_dict)
            changelog.data[key] = value
            key_bytes, _ = topic.prepare_key(key, changelog.key_serializer)
            value_bytes, _ = topic.prepare_value(value, changelog.value_serializer)
            states.append((key_bytes, value_bytes, partition))
            decoded_states[key] = (value, stored)
        events = batch.events
        batch.clear()
        await outbound.end_batch(topic.get_topic_name(), states, events)

    async def dead_letter(spec: TopicSpec, message: Any, reason: str, value: bytes | None = None) -> None:
        headers = dead_letter_headers(spec, message.headers, reason, message.partition, message.offset)
        await (await sinks[spec.dead_letter.name].send(
            key=message.key, value=message.value if value is None else value, headers=headers))

    async def publish(step: Step[S], stored: EntityState[S], spec: TopicSpec, message: Any) -> None:
        await alerts.publish(stored.outbox, step.alerts)
        for out_spec, key, out in step.records:
            # Snapshots: sent behind this record's alerts, before its batch's states; faust flushes
            # them before it commits, a replay re-sends them, nothing waits for them.
            outbound.snapshot(out_spec, key.encode(), encode(out))
        for reason, part in step.rejected:
            await dead_letter(spec, message, reason, part.SerializeToString())

    def state_before_failure(key: str) -> EntityState[S]:
        """The state as the records before the failed one left it: the table's, with this batch's
        earlier records of the entity applied again (their outputs are out already; their alert
        revisions go back into the outbox, which drops those already acknowledged)."""
        earlier = batch.applied.pop(key, [])
        batch.states.pop(key, None)
        decoded_states.pop(key, None)
        stored = stored_state(key)
        for spec, message in earlier:
            try:
                entity_id, value = decode_entity_record(
                    spec, message.key, message.value, message.headers, processor.decode, processor.entity_of)
                state = stored.state if stored.state is not None else processor.new_state(entity_id)
                step = processor.step(state, EntityRecord(entity_id, spec, value, datetime.now(UTC)))
            except InvalidRecord:
                pass  # dead-lettered when it came: only its offset counts
            else:
                for event in step.alerts:
                    AlertOutbox.stage(stored.outbox, event)
                stored.state = step.state
            write(key, stored, spec, message)
        alerts.outbox.prune(stored.outbox)
        return stored

    async def apply(spec: TopicSpec, message: Any) -> None:
        key = table_key(message.key)
        stored = stored_state(key)
        if stored.already_applied(message.topic, message.partition, message.offset):
            log.info("record already in the stored state, skipped", extra={
                "topic": message.topic, "partition": message.partition, "offset": message.offset, "entity_id": key})
            return
        if trace:
            log.info("apply", extra={"topic": message.topic, "partition": message.partition,
                                     "offset": message.offset, "entity_id": key,
                                     "prev": dict(stored.applied_offsets)})
        try:
            entity_id, value = decode_entity_record(
                spec, message.key, message.value, message.headers, processor.decode, processor.entity_of)
            if entity_id != key:  # a record without a key: its entity's state holds its offset
                key, stored = entity_id, stored_state(entity_id)
                if stored.already_applied(message.topic, message.partition, message.offset):
                    return
            state = stored.state if stored.state is not None else processor.new_state(entity_id)
            step = processor.step(state, EntityRecord(entity_id, spec, value, datetime.now(UTC)))
            for out_spec, _, out in step.records:  # a bug of the step's: parked below, like a crash
                check_output(out_spec, out, sinks, processor.app_id)
        except Exception as error:
            if not isinstance(error, InvalidRecord):
                log.exception("processing a record failed", extra={"topic": spec.name, "entity_id": key})
                # The step may have changed the state before it failed: go back to the state before it.
                stored = state_before_failure(key)
            await dead_letter(spec, message, str(error) if isinstance(error, InvalidRecord) else repr(error))
            write(key, stored, spec, message)  # so a replay of this record does not dead-letter it again
            return
        await publish(step, stored, spec, message)
        stored.state = step.state
        write(key, stored, spec, message)

    consumed = {name: BUS_METRICS.consumed.labels(name) for name in specs}

    @app.agent(source)
    async def process(stream: faust.StreamT) -> None:
        await alerts.start()
        async for event in cast(faust.Stream, stream).noack().events():
            async with batch.lock:
                message = event.message
                await alerts.take_over_if_reassigned()
                spec = specs[message.topic]
                consumed[spec.name].inc()
                await apply(spec, message)
                batch.add(event)
                if batch_due():
                    await write_batch()

    def batch_due() -> bool:
        # A rebalance stops the flow, then waits until every record taken is acknowledged.
        return batch.full() or not app.flow_control.is_active()

    @app.timer(interval=BATCH_IDLE_CHECK_S)
    async def write_held_batch() -> None:
        # The agent only ends a batch when a record comes: a quiet stream's batch ends here.
        if batch.events and not batch.lock.locked() and batch_due():
            async with batch.lock:
                await write_batch()

    async def end_batch() -> None:
        # On a stop the timer above has already stopped: without this, faust would wait for the
        # batch's acknowledgements until it is killed, and the batch's states would be lost.
        async with batch.lock:
            if batch.events:
                await write_batch()
            await outbound.flush()

    app.before_wait_empty(end_batch)

    if processor.ticks is not None:
        ticks = processor.ticks

        @app.timer(interval=ticks.interval_s, on_leader=True)
        async def tick() -> None:
            sink = sinks[ticks.topic.name]
            for entity_id, tick_message in ticks.make(datetime.now(UTC)):
                await sink.send(key=entity_id.encode(), value=encode(tick_message),
                                headers=standard_headers(ticks.topic, processor.source))

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            ready = app.rebalancing is False and process.started if hasattr(process, "started") else True
            return self.json({"status": "ok" if ready else "starting", "ledger_alerts": len(alerts.ledger),
                              "stalled_partitions": len(watchdog.stalled)},
                             status=200 if ready else 503)

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            body, content_type = metrics_response()
            return self.bytes(body, content_type=content_type.split(";")[0])

    return app


def run_entity_processor(
    processor: EntityProcessor[S],
    settings: MadinaSettings,
    topics: Sequence[TopicSpec],
    *,
    web_port: int,
    web_host: str = "127.0.0.1",
) -> int:
    """Create ``topics`` (and their dead-letter twins) if missing, then run the worker until SIGTERM."""
    from madina.bus import ensure_topics
    from madina.streams import run_worker

    asyncio.run(ensure_topics(settings.bootstrap_servers, topics, default_partitions=settings.topic_partitions,
                              replication_factor=settings.topic_replication_factor))
    app = create_entity_app(processor, settings, web_port=web_port, web_host=web_host, trace=settings.debug_trace)
    run_worker(app, settings)
    return 0


P = TypeVar("P", bound=MadinaSettings)  # a processor's settings class


def processor_main(
    settings_class: type[P],
    make: Callable[[P], EntityProcessor[Any]],
    topics: Sequence[TopicSpec],
    *,
    source: str,
    port_of: Callable[[P], int],
) -> int:
    """A processor's ``madina service`` entry point: its settings from the environment, logs named
    ``source``, then :func:`run_entity_processor` on the web port ``port_of`` reads from them."""
    from madina.observability import configure_logging
    from madina.settings import load_settings

    settings = load_settings(settings_class)
    configure_logging(source, settings.log_level, settings.log_format)
    return run_entity_processor(make(settings), settings, topics, web_port=port_of(settings),
                                web_host=settings.bind_host)
