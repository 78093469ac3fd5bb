"""The asyncio server: configuration, connections, request dispatch and the broker lifecycle.

In-process use (tests, the supervisor)::

    broker = Broker(BrokerConfig(port=0, memory=True))
    await broker.start()          # broker.port is now the real port
    ...
    await broker.stop()

``serve()`` wraps that in a blocking call for ``madina broker`` and ``python -m madina.broker``.

Each connection reads length-prefixed frames and dispatches every request as soon as it is
complete, so librdkafka's pipelined requests do not wait on each other; answers are still
written strictly in request order, as Kafka clients require.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import struct
import sys
import uuid
from collections import deque
from dataclasses import dataclass

from madina.broker import errors
from madina.broker.groups import DEFAULT_INITIAL_REBALANCE_DELAY_MS, GroupCoordinator, OffsetStore
from madina.broker.handlers import Handlers, HandlerSettings, RequestContext
from madina.broker.protocol import (
    API_VERSIONS_KEY,
    SUPPORTED_APIS,
    ApiSpec,
    MalformedRequest,
    api_versions_body,
    decode_body,
    encode_response,
    frame_response,
    parse_header,
    peek_header,
)
from madina.broker.store import LogStore
from madina.broker.transactions import TransactionLog

logger = logging.getLogger("madina.broker")

_FRAME_SIZE = struct.Struct(">i")
# Stop reading from a client with this many answers queued; resume when it catches up.
MAX_QUEUED_RESPONSES = 1000
STAGING_BYTES = 256 * 1024
WILDCARD_HOSTS = {"0.0.0.0", "::", ""}
# How often open transactions are checked against their timeouts (Kafka: every 10 s).
TRANSACTION_CHECK_INTERVAL_S = 1.0


@dataclass
class BrokerConfig:
    host: str = "127.0.0.1"
    port: int = 9092
    # None with memory=False also keeps everything in memory (with a warning at start).
    data_dir: str | None = None
    memory: bool = False
    default_partitions: int = 1
    auto_create: bool = True
    # Host and port put in Metadata; default to the listening address.
    advertised_host: str | None = None
    max_frame_bytes: int = 100 * 1024 * 1024
    # "acks-all" (default): fsync before answering acks=all produces and offset commits;
    # "always": before every produce answer; "never": leave flushing to the OS.
    fsync: str = "acks-all"
    retention_check_interval_s: float = 60.0
    # How often the compaction cleaner looks for compacted partitions due for cleaning.
    cleaner_interval_s: float = 15.0
    # segment.bytes / segment.ms for compacted topics that set neither (faust changelogs,
    # Madina's compacted topics): segments must close before the cleaner can touch them,
    # and Kafka's 1 GiB / 7 days would let a laptop's changelogs grow for days first.
    compact_segment_bytes: int = 64 * 1024 * 1024
    compact_segment_ms: int = 3_600_000
    min_session_timeout_ms: int = 1000
    max_session_timeout_ms: int = 3_600_000
    # group.initial.rebalance.delay.ms: how long a group's first rebalance waits for more members.
    group_initial_rebalance_delay_ms: int = DEFAULT_INITIAL_REBALANCE_DELAY_MS

    def __post_init__(self) -> None:
        if self.memory and self.data_dir:
            raise ValueError("choose either a data directory or memory mode, not both")
        if self.default_partitions < 1:
            raise ValueError("default_partitions must be at least 1")
        if self.cleaner_interval_s <= 0:
            raise ValueError("cleaner_interval_s must be positive")
        if self.fsync not in ("acks-all", "always", "never"):
            raise ValueError(f"fsync must be acks-all, always or never, not {self.fsync!r}")
        if self.group_initial_rebalance_delay_ms < 0:
            raise ValueError("group_initial_rebalance_delay_ms must not be negative")


@dataclass(slots=True)
class _PendingResponse:
    spec: ApiSpec
    version: int
    correlation_id: int
    answer: object  # encoded bytes, or a future of a response object


class Connection(asyncio.BufferedProtocol):
    """One client connection: frames in, answers out in request order.

    Bytes are received straight into our buffers (``BufferedProtocol``): small frames into
    a reusable staging area, and a frame too big for it into a bytearray of exactly its
    size, so a 1 MiB produce request is not copied around while it arrives.
    """

    def __init__(self, broker: Broker):
        self.broker = broker
        self.transport: asyncio.Transport | None = None
        self.staging = bytearray(STAGING_BYTES)
        self.staged_start = 0
        self.staged_end = 0
        self.large_frame: bytearray | None = None
        self.large_filled = 0
        self.pending: deque[_PendingResponse] = deque()
        self.peer = "?"
        self.client_host = ""
        self.closed = False
        self.reading_paused = False
        self.writing_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if peer:
            self.client_host = str(peer[0])
            self.peer = f"{peer[0]}:{peer[1]}"
        self.broker.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.broker.connections.discard(self)
        for pending in self.pending:
            if isinstance(pending.answer, asyncio.Future) and pending.spec.key == 1:
                pending.answer.cancel()  # a parked Fetch nobody will read
        self.pending.clear()

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._update_reading()

    def _update_reading(self) -> None:
        if self.transport is None or self.closed:
            return
        should_pause = self.writing_paused or len(self.pending) >= MAX_QUEUED_RESPONSES
        if should_pause and not self.reading_paused:
            self.transport.pause_reading()
            self.reading_paused = True
        elif not should_pause and self.reading_paused:
            self.reading_paused = False
            self.transport.resume_reading()
            self._handle_staged_frames()

    def close(self, reason: str, *args) -> None:
        if not self.closed:
            logger.warning("closing connection from %s: " + reason, self.peer, *args)
            self.closed = True
            if self.transport is not None:
                self.transport.abort()

    def get_buffer(self, sizehint: int) -> memoryview:
        if self.large_frame is not None:
            return memoryview(self.large_frame)[self.large_filled :]
        if len(self.staging) - self.staged_end < STAGING_BYTES // 4:
            # Move the unparsed tail to the front to make room.
            pending = self.staged_end - self.staged_start
            self.staging[:pending] = self.staging[self.staged_start : self.staged_end]
            self.staged_start, self.staged_end = 0, pending
        return memoryview(self.staging)[self.staged_end :]

    def buffer_updated(self, nbytes: int) -> None:
        if self.large_frame is not None:
            self.large_filled += nbytes
            if self.large_filled == len(self.large_frame):
                frame, self.large_frame = self.large_frame, None
                self._handle(frame)
            return
        self.staged_end += nbytes
        self._handle_staged_frames()

    def _handle_staged_frames(self) -> None:
        staging = self.staging
        max_frame = self.broker.config.max_frame_bytes
        while self.staged_end - self.staged_start >= 4 and not self.closed and not self.reading_paused:
            start = self.staged_start
            (size,) = _FRAME_SIZE.unpack_from(staging, start)
            if size < 8 or size > max_frame:
                self.close("frame size %d outside 8..%d bytes", size, max_frame)
                return
            available = self.staged_end - start - 4
            if available >= size:
                frame = bytes(staging[start + 4 : start + 4 + size])
                self.staged_start = start + 4 + size
                self._handle(frame)
                continue
            if size > STAGING_BYTES // 2:
                self.large_frame = bytearray(size)
                self.large_frame[:available] = staging[start + 4 : self.staged_end]
                self.large_filled = available
                self.staged_start = self.staged_end = 0
            break
        if self.staged_start == self.staged_end:
            self.staged_start = self.staged_end = 0

    def _handle(self, frame: bytes | bytearray) -> None:
        try:
            api_key, version, correlation_id = peek_header(frame)
        except MalformedRequest as error:
            self.close("%s", error)
            return
        spec = SUPPORTED_APIS.get(api_key)
        if spec is None:
            self.close("unsupported API key %d (version %d)", api_key, version)
            return
        if not spec.min_version <= version <= spec.max_version:
            self._reject_version(spec, version, correlation_id)
            return
        try:
            header = parse_header(frame, spec.request_is_flexible(version))
            request = decode_body(spec, header, frame)
        except Exception as error:
            self.close("cannot decode %s v%d request: %s", spec.name, version, error or type(error).__name__)
            return
        context = RequestContext(header.client_id or "", self.client_host, version)
        try:
            if api_key == API_VERSIONS_KEY:
                answer: object = frame_response(
                    correlation_id, False, api_versions_body(errors.NONE, version)
                )
            else:
                answer = self.broker.handlers.by_key[api_key](request, context)
                if answer is None:
                    return
                if not isinstance(answer, asyncio.Future):
                    answer = encode_response(spec, version, correlation_id, answer)
        except TypeError as error:
            # The decoder reads a -1 length as null even where the schema forbids null;
            # handlers then trip over it. That is a malformed request, not a broker bug.
            self.close("malformed %s v%d request: %s", spec.name, version, error)
            return
        except Exception:
            logger.exception("%s v%d from %s failed", spec.name, version, self.peer)
            self.close("internal error while handling %s", spec.name)
            return
        self._enqueue(_PendingResponse(spec, version, correlation_id, answer))

    def _reject_version(self, spec: ApiSpec, version: int, correlation_id: int) -> None:
        if spec.key == API_VERSIONS_KEY:
            # KIP-511: answer with UNSUPPORTED_VERSION and a v0 body listing what we support,
            # so the client can retry with a version we know.
            body = api_versions_body(errors.UNSUPPORTED_VERSION, 0)
            self._enqueue(
                _PendingResponse(spec, 0, correlation_id, frame_response(correlation_id, False, body))
            )
            return
        logger.warning(
            "%s v%d from %s is not supported (%d..%d)",
            spec.name,
            version,
            self.peer,
            spec.min_version,
            spec.max_version,
        )
        response_class = spec.response_class
        error_field = response_class._struct.fields.get("error_code")
        if (
            version <= response_class.max_version
            and error_field is not None
            and error_field.for_version_q(version)
        ):
            try:
                answer = encode_response(
                    spec, version, correlation_id, response_class(error_code=errors.UNSUPPORTED_VERSION)
                )
                self._enqueue(_PendingResponse(spec, version, correlation_id, answer))
                return
            except Exception:  # no encodable error shape for this version: fall through
                logger.debug("cannot encode an error answer for %s v%d", spec.name, version, exc_info=True)
        self.close("%s v%d has no error answer we can encode", spec.name, version)

    def _enqueue(self, pending: _PendingResponse) -> None:
        if not self.pending and not isinstance(pending.answer, asyncio.Future):
            assert self.transport is not None
            self.transport.write(pending.answer)  # type: ignore[arg-type]
            return
        self.pending.append(pending)
        if isinstance(pending.answer, asyncio.Future):
            pending.answer.add_done_callback(self._answer_ready)
        if len(self.pending) >= MAX_QUEUED_RESPONSES:
            self._update_reading()

    def _answer_ready(self, _future: asyncio.Future) -> None:
        if self.closed or self.transport is None:
            return
        while self.pending:
            head = self.pending[0]
            answer = head.answer
            if isinstance(answer, asyncio.Future):
                if not answer.done():
                    break
                if answer.cancelled() or answer.exception() is not None:
                    error = None if answer.cancelled() else answer.exception()
                    logger.error(
                        "%s v%d from %s failed: %r",
                        head.spec.name,
                        head.version,
                        self.peer,
                        error,
                        exc_info=error,
                    )
                    self.close("internal error while handling %s", head.spec.name)
                    return
                try:
                    answer = encode_response(head.spec, head.version, head.correlation_id, answer.result())
                except Exception:
                    logger.exception("encoding %s v%d failed", head.spec.name, head.version)
                    self.close("internal error while encoding %s", head.spec.name)
                    return
            self.pending.popleft()
            self.transport.write(answer)  # type: ignore[arg-type]
        if self.reading_paused:
            self._update_reading()


class Broker:
    """A single-node Kafka-wire broker running on the current event loop."""

    def __init__(self, config: BrokerConfig | None = None):
        self.config = config or BrokerConfig()
        self.connections: set[Connection] = set()
        self.server: asyncio.base_events.Server | None = None
        self.port: int = self.config.port
        self.host: str = self.config.host
        self.store: LogStore | None = None
        self.coordinator: GroupCoordinator | None = None
        self.handlers: Handlers
        self._retention_task: asyncio.Task | None = None
        self._cleaner_task: asyncio.Task | None = None
        self._transactions_task: asyncio.Task | None = None

    async def start(self) -> None:
        config = self.config
        data_dir = None if config.memory else config.data_dir
        if data_dir is None and not config.memory:
            logger.warning("no data directory given: keeping all data in memory")
        self.store = LogStore(
            data_dir,
            {"segment.bytes": str(config.compact_segment_bytes), "segment.ms": str(config.compact_segment_ms)},
        )
        offsets = OffsetStore(data_dir)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.store.load)
        await loop.run_in_executor(None, offsets.load)
        self.coordinator = GroupCoordinator(
            offsets,
            config.min_session_timeout_ms,
            config.max_session_timeout_ms,
            config.group_initial_rebalance_delay_ms,
        )
        self.server = await loop.create_server(
            lambda: Connection(self), config.host, config.port, reuse_address=True, backlog=256
        )
        socket_name = self.server.sockets[0].getsockname()
        self.port = socket_name[1]
        advertised = config.advertised_host or (
            config.host if config.host not in WILDCARD_HOSTS else "127.0.0.1"
        )
        settings = HandlerSettings(
            advertised_host=advertised,
            advertised_port=self.port,
            default_partitions=config.default_partitions,
            auto_create=config.auto_create,
            cluster_id=_cluster_id(data_dir),
            fsync=config.fsync,
            group_initial_rebalance_delay_ms=config.group_initial_rebalance_delay_ms,
        )
        self.handlers = Handlers(settings, self.store, self.coordinator, TransactionLog(data_dir))
        self._retention_task = asyncio.create_task(self._enforce_retention_periodically())
        self._transactions_task = asyncio.create_task(self._abort_expired_transactions_periodically())
        self._cleaner_task = asyncio.create_task(self._clean_periodically())
        logger.info(
            "broker listening on %s:%d (%s)",
            config.host,
            self.port,
            f"data in {data_dir}" if data_dir else "in memory",
        )

    async def _enforce_retention_periodically(self) -> None:
        assert self.store is not None
        while True:
            await asyncio.sleep(self.config.retention_check_interval_s)
            try:
                async with self.store.maintenance_lock:
                    self.store.enforce_retention()
            except Exception:
                logger.exception("retention check failed")

    async def _abort_expired_transactions_periodically(self) -> None:
        while True:
            await asyncio.sleep(TRANSACTION_CHECK_INTERVAL_S)
            try:
                self.handlers.abort_expired_transactions()
            except Exception:
                logger.exception("aborting expired transactions failed")

    async def _clean_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.config.cleaner_interval_s)
            try:
                await self.run_cleaner()
            except Exception:
                logger.exception("log cleaner failed")

    async def run_cleaner(self, force: bool = False) -> int:
        """Compact the compacted partitions that are due now (all of them with ``force``)."""
        assert self.store is not None
        return await self.store.run_cleaner(force)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in (self._retention_task, self._cleaner_task, self._transactions_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.close()
        if self.server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.server.wait_closed(), 2)
        if self.coordinator is not None:
            self.coordinator.close()
        if hasattr(self, "handlers"):
            self.handlers.transactions.close()
        if self.store is not None:
            self.store.close()
        logger.info("broker stopped")

    async def __aenter__(self) -> Broker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.stop()


def _cluster_id(data_dir: str | None) -> str:
    """Stable across restarts of a data directory, fresh for each in-memory broker."""
    if data_dir is None:
        return "madina-" + uuid.uuid4().hex[:16]
    path = os.path.join(data_dir, "cluster_id")
    os.makedirs(data_dir, exist_ok=True)
    if os.path.exists(path):
        with open(path) as handle:
            return handle.read().strip()
    cluster_id = "madina-" + uuid.uuid4().hex[:16]
    with open(path, "w") as handle:
        handle.write(cluster_id)
    return cluster_id


async def _serve_until_signalled(config: BrokerConfig) -> None:
    broker = Broker(config)
    await broker.start()
    print(f"madina broker listening on {config.host}:{broker.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stop.set)
    try:
        await stop.wait()
    finally:
        logger.info("shutting down")
        await broker.stop()


def serve(
    host: str = "127.0.0.1",
    port: int = 9092,
    data_dir: str | None = None,
    memory: bool = False,
    default_partitions: int = 1,
    auto_create: bool = True,
    **options,
) -> int:
    """Run a broker until SIGTERM or SIGINT; print the listening address once; return 0."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )
    config = BrokerConfig(
        host=host,
        port=port,
        data_dir=data_dir,
        memory=memory,
        default_partitions=default_partitions,
        auto_create=auto_create,
        **options,
    )
    # What start-up built lives as long as the broker: frozen, full collections skip it, which
    # keeps their pauses out of produce latency (madina.runtime.freeze_startup_heap does the same
    # for the services; the broker imports nothing from madina outside its own package).
    gc.collect()
    gc.freeze()
    asyncio.run(_serve_until_signalled(config))
    return 0
