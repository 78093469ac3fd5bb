"""One handler per Kafka API: decoded request in, response object (or a future of one) out.

A handler returns a response object, ``None`` when the protocol wants no answer
(Produce with acks=0), or a future when the answer has to wait: an fsync for acks=all,
a Fetch long-poll, a JoinGroup or SyncGroup barrier. The connection writes answers in
request order whichever way they come back.

Produce and Fetch are the hot path and do only per-request and per-partition work:
batches are checked by header and CRC, stored as received, and served back whole.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from kafka.protocol.admin import (
    CreatePartitionsResponse,
    CreateTopicsResponse,
    DeleteGroupsResponse,
    DeleteTopicsResponse,
    DescribeConfigsResponse,
    DescribeGroupsResponse,
    DescribeProducersResponse,
    DescribeTransactionsResponse,
    ListGroupsResponse,
    ListTransactionsResponse,
)
from kafka.protocol.consumer import (
    FetchResponse,
    HeartbeatResponse,
    JoinGroupResponse,
    LeaveGroupResponse,
    ListOffsetsResponse,
    OffsetCommitResponse,
    OffsetFetchResponse,
    SyncGroupResponse,
)
from kafka.protocol.metadata import FindCoordinatorResponse, MetadataResponse
from kafka.protocol.producer import (
    AddOffsetsToTxnResponse,
    AddPartitionsToTxnResponse,
    EndTxnResponse,
    InitProducerIdResponse,
    ProduceResponse,
    TxnOffsetCommitResponse,
)

from madina.broker import errors, transactions
from madina.broker.admin import AdminApis
from madina.broker.groups import DEFAULT_INITIAL_REBALANCE_DELAY_MS, GroupCoordinator, JoinResult, SyncResult
from madina.broker.partition import PartitionLog
from madina.broker.protocol import KAFKA_RELEASE
from madina.broker.records import TRANSACTIONAL_FLAG, CorruptBatchError, build_control_batch, crc_matches, parse_batches
from madina.broker.store import LogStore
from madina.broker.topic_configs import (
    DEFAULT_TOPIC_CONFIGS,
    INTEGER_TOPIC_CONFIGS,
    topic_name_problem,
    validate_topic_configs,
)
from madina.broker.transactions import TransactionCoordinator, TransactionLog

logger = logging.getLogger("madina.broker")

NODE_ID = 0
ZERO_UUID = uuid.UUID(int=0)
EARLIEST_TIMESTAMP = -2
LATEST_TIMESTAMP = -1
MAX_TIMESTAMP = -3
FETCH_SESSION_ID_NOT_FOUND = 70
READ_COMMITTED = 1
COORDINATOR_GROUP = 0
COORDINATOR_TRANSACTION = 1
UNSTABLE_OFFSET_COMMIT = 88
TRANSACTIONAL_ID_NOT_FOUND = 105
# DescribeConfigs config sources and types (org.apache.kafka.common.requests.DescribeConfigsResponse)
DYNAMIC_TOPIC_CONFIG = 1
STATIC_BROKER_CONFIG = 4
DEFAULT_CONFIG = 5
CONFIG_TYPE_BOOLEAN = 1
CONFIG_TYPE_STRING = 2
CONFIG_TYPE_INT = 3
CONFIG_TYPE_SHORT = 4
CONFIG_TYPE_LONG = 5
CONFIG_TYPE_LIST = 7
# Types of the broker configs we describe, as Kafka's KafkaConfig declares them.
BROKER_CONFIG_TYPES = {
    "advertised.listeners": CONFIG_TYPE_STRING,
    "auto.create.topics.enable": CONFIG_TYPE_BOOLEAN,
    "broker.id": CONFIG_TYPE_INT,
    "compression.type": CONFIG_TYPE_STRING,
    "default.replication.factor": CONFIG_TYPE_INT,
    "delete.topic.enable": CONFIG_TYPE_BOOLEAN,
    "group.initial.rebalance.delay.ms": CONFIG_TYPE_INT,
    "group.max.session.timeout.ms": CONFIG_TYPE_INT,
    "group.min.session.timeout.ms": CONFIG_TYPE_INT,
    "inter.broker.protocol.version": CONFIG_TYPE_STRING,
    "listeners": CONFIG_TYPE_STRING,
    "log.cleaner.enable": CONFIG_TYPE_BOOLEAN,
    "log.cleanup.policy": CONFIG_TYPE_LIST,
    "log.dirs": CONFIG_TYPE_STRING,
    "log.flush.interval.messages": CONFIG_TYPE_LONG,
    "log.message.format.version": CONFIG_TYPE_STRING,
    "log.retention.bytes": CONFIG_TYPE_LONG,
    "log.retention.ms": CONFIG_TYPE_LONG,
    "log.roll.ms": CONFIG_TYPE_LONG,
    "log.segment.bytes": CONFIG_TYPE_INT,
    "message.max.bytes": CONFIG_TYPE_INT,
    "min.insync.replicas": CONFIG_TYPE_INT,
    "num.partitions": CONFIG_TYPE_INT,
    "offsets.topic.replication.factor": CONFIG_TYPE_SHORT,
    "transaction.max.timeout.ms": CONFIG_TYPE_INT,
    "transaction.state.log.replication.factor": CONFIG_TYPE_SHORT,
    "unclean.leader.election.enable": CONFIG_TYPE_BOOLEAN,
}
RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4

_Metadata = MetadataResponse
_MetadataTopic = MetadataResponse.MetadataResponseTopic
_MetadataPartition = _MetadataTopic.MetadataResponsePartition
_ProduceTopic = ProduceResponse.TopicProduceResponse
_ProducePartition = _ProduceTopic.PartitionProduceResponse
_FetchTopic = FetchResponse.FetchableTopicResponse
_FetchPartition = _FetchTopic.PartitionData
_ListOffsetsTopic = ListOffsetsResponse.ListOffsetsTopicResponse
_ListOffsetsPartition = _ListOffsetsTopic.ListOffsetsPartitionResponse
_CommitTopic = OffsetCommitResponse.OffsetCommitResponseTopic
_CommitPartition = _CommitTopic.OffsetCommitResponsePartition
_OffsetFetchTopic = OffsetFetchResponse.OffsetFetchResponseTopic
_OffsetFetchPartition = _OffsetFetchTopic.OffsetFetchResponsePartition
_DescribedGroup = DescribeGroupsResponse.DescribedGroup
_DescribedMember = _DescribedGroup.DescribedGroupMember
_ConfigResult = DescribeConfigsResponse.DescribeConfigsResult
_ConfigEntry = _ConfigResult.DescribeConfigsResourceResult
_CreatedTopic = CreateTopicsResponse.CreatableTopicResult
_CreatedTopicConfig = _CreatedTopic.CreatableTopicConfigs


@dataclass
class RequestContext:
    client_id: str
    client_host: str
    version: int


@dataclass
class HandlerSettings:
    advertised_host: str
    advertised_port: int
    default_partitions: int
    auto_create: bool
    cluster_id: str
    # "acks-all": fsync before answering acks=all produces and offset commits;
    # "always": before every produce answer; "never": leave it to the OS.
    fsync: str = "acks-all"
    group_initial_rebalance_delay_ms: int = DEFAULT_INITIAL_REBALANCE_DELAY_MS


def _chain(source: asyncio.Future, build: Callable[[], object]) -> asyncio.Future:
    """A future that resolves to ``build()`` once ``source`` is done (for fsync waits)."""
    result = asyncio.get_running_loop().create_future()

    def finish(done: asyncio.Future) -> None:
        if result.done():
            return
        if done.cancelled():
            result.cancel()
            return
        failure = done.exception()
        if failure is not None:
            result.set_exception(failure)
        else:
            result.set_result(build())

    source.add_done_callback(finish)
    return result


class FetchWaiter:
    """A Fetch parked until enough bytes arrive on its partitions or max_wait_ms passes.

    It is registered only on the partitions it reads, so an append wakes exactly the
    fetches that could use it; the wake-up is coalesced to one check per loop turn.
    """

    def __init__(
        self,
        partitions: list[tuple[PartitionLog, int]],
        min_bytes: int,
        build: Callable[[], object],
        committed_only: bool = False,
    ):
        self.loop = asyncio.get_running_loop()
        self.partitions = partitions
        self.min_bytes = min_bytes
        # read_committed: only bytes below the last stable offset count.
        self.committed_only = committed_only
        self.build = build
        self.future = self.loop.create_future()
        self.check_scheduled = False
        self.timer: asyncio.TimerHandle | None = None
        self.future.add_done_callback(self._detach)

    def park(self, max_wait_ms: int) -> asyncio.Future:
        for partition, _ in self.partitions:
            partition.waiters.add(self)
        self.timer = self.loop.call_later(max_wait_ms / 1000, self._finish)
        return self.future

    def wake(self) -> None:
        if not self.check_scheduled:
            self.check_scheduled = True
            self.loop.call_soon(self._check)

    def _check(self) -> None:
        self.check_scheduled = False
        if self.future.done():
            return
        available = sum(
            partition.bytes_after(offset)
            for partition, offset in self.partitions
            if not self.committed_only or offset < partition.last_stable_offset
        )
        if available >= self.min_bytes:
            self._finish()

    def _finish(self) -> None:
        if not self.future.done():
            try:
                self.future.set_result(self.build())
            except Exception as error:  # surfaced to the connection, which logs and closes
                self.future.set_exception(error)

    def _detach(self, _future: asyncio.Future) -> None:
        if self.timer is not None:
            self.timer.cancel()
        for partition, _ in self.partitions:
            partition.waiters.discard(self)


class Handlers(AdminApis):
    """The per-API handlers, sharing the log store and the group coordinator."""

    def __init__(
        self,
        settings: HandlerSettings,
        store: LogStore,
        coordinator: GroupCoordinator,
        transaction_log: TransactionLog | None = None,
    ):
        self.settings = settings
        self.store = store
        self.coordinator = coordinator
        self.next_producer_id = store.highest_producer_id + 1
        self.transactions = TransactionCoordinator(
            transaction_log or TransactionLog(None),
            self._write_marker,
            self.coordinator.offsets.commit,
            self._allocate_producer_id,
        )
        self.transactions.load()
        self.next_producer_id = max(self.next_producer_id, self.transactions.highest_producer_id + 1)
        self.by_key: dict[int, Callable] = {
            0: self.produce,
            1: self.fetch,
            2: self.list_offsets,
            3: self.metadata,
            8: self.offset_commit,
            9: self.offset_fetch,
            10: self.find_coordinator,
            11: self.join_group,
            12: self.heartbeat,
            13: self.leave_group,
            14: self.sync_group,
            15: self.describe_groups,
            16: self.list_groups,
            19: self.create_topics,
            20: self.delete_topics,
            22: self.init_producer_id,
            24: self.add_partitions_to_txn,
            25: self.add_offsets_to_txn,
            26: self.end_txn,
            21: self.delete_records,
            28: self.txn_offset_commit,
            29: self.describe_acls,
            30: self.create_acls,
            31: self.delete_acls,
            32: self.describe_configs,
            33: self.alter_configs,
            34: self.alter_replica_log_dirs,
            35: self.describe_log_dirs,
            37: self.create_partitions,
            42: self.delete_groups,
            43: self.elect_leaders,
            44: self.incremental_alter_configs,
            45: self.alter_partition_reassignments,
            46: self.list_partition_reassignments,
            50: self.describe_user_scram_credentials,
            51: self.alter_user_scram_credentials,
            61: self.describe_producers,
            65: self.describe_transactions,
            66: self.list_transactions,
        }

    def _wait_durable(self, required: bool) -> asyncio.Future | None:
        if not required or not self.store.durable or self.settings.fsync == "never":
            return None
        return self.store.syncer.wait()

    # ---- Produce ------------------------------------------------------------------------
    def produce(self, request, ctx: RequestContext):
        acks = request.acks
        appended = False
        topics = []
        for topic_data in request.topic_data:
            results = []
            for partition_data in topic_data.partition_data:
                error, base_offset, log_start = self._produce_partition(topic_data.name, partition_data, acks)
                appended = appended or (error == errors.NONE and base_offset >= 0)
                results.append(
                    _ProducePartition(
                        index=partition_data.index,
                        error_code=error,
                        base_offset=base_offset,
                        log_append_time_ms=-1,
                        log_start_offset=log_start,
                        record_errors=[],
                        error_message=None,
                    )
                )
            topics.append(_ProduceTopic(name=topic_data.name, partition_responses=results))
        if acks == 0:
            return None
        response = ProduceResponse(responses=topics, throttle_time_ms=0)
        durable = self._wait_durable(appended and (acks == -1 or self.settings.fsync == "always"))
        if durable is None:
            return response
        return _chain(durable, lambda: response)

    def _produce_partition(self, topic: str, partition_data, acks: int) -> tuple[int, int, int]:
        if acks not in (0, 1, -1):
            return errors.INVALID_REQUIRED_ACKS, -1, -1
        partition = self.store.partition(topic, partition_data.index)
        if partition is None:
            return errors.UNKNOWN_TOPIC_OR_PARTITION, -1, -1
        records = partition_data.records
        if not records:
            return errors.CORRUPT_MESSAGE, -1, partition.log_start_offset
        try:
            headers = parse_batches(records)
        except CorruptBatchError as error:
            logger.warning("produce to %s-%d rejected: %s", topic, partition_data.index, error)
            return errors.CORRUPT_MESSAGE, -1, partition.log_start_offset
        max_batch = int(
            partition.configs.get("max.message.bytes", DEFAULT_TOPIC_CONFIGS["max.message.bytes"])
        )
        for header in headers:
            if header.size > max_batch:
                return errors.MESSAGE_TOO_LARGE, -1, partition.log_start_offset
            if not crc_matches(records, header):
                logger.warning("produce to %s-%d rejected: CRC mismatch", topic, partition_data.index)
                return errors.CORRUPT_MESSAGE, -1, partition.log_start_offset
        if headers[0].producer_id >= 0:
            for header in headers:
                if (
                    header.attributes & TRANSACTIONAL_FLAG
                    and header.producer_id not in partition.open_transactions
                    and not self.transactions.has_partition(
                        header.producer_id, header.producer_epoch, topic, partition_data.index
                    )
                ):
                    # Written outside a transaction that added this partition, it would
                    # hold the last stable offset back forever (a hanging transaction).
                    return transactions.INVALID_TXN_STATE, -1, partition.log_start_offset
                sequence_error, duplicate_of = partition.check_producer(header)
                if sequence_error != errors.NONE:
                    return sequence_error, -1, partition.log_start_offset
                if duplicate_of is not None:
                    # A retried batch that was already stored: answer as the first time.
                    return errors.NONE, duplicate_of, partition.log_start_offset
        base_offset = partition.append(records, headers)
        self.store.mark_dirty(partition)
        if partition.waiters:
            for waiter in tuple(partition.waiters):
                waiter.wake()
        return errors.NONE, base_offset, partition.log_start_offset

    # ---- Fetch --------------------------------------------------------------------------
    def fetch(self, request, ctx: RequestContext):
        version = ctx.version
        if version >= 7 and request.session_id != 0:
            # We never hand out fetch sessions (KIP-227), so a client can only get here
            # with a stale id; this error makes it fall back to full fetches.
            return FetchResponse(
                throttle_time_ms=0, error_code=FETCH_SESSION_ID_NOT_FOUND, session_id=0, responses=[]
            )
        max_bytes = request.max_bytes if version >= 3 and request.max_bytes > 0 else 0x7FFFFFFF
        wanted = [
            (topic.topic, [(p.partition, p.fetch_offset, p.partition_max_bytes) for p in topic.partitions])
            for topic in request.topics
        ]
        committed_only = version >= 4 and request.isolation_level == READ_COMMITTED

        def build():
            return self._build_fetch(wanted, max_bytes, committed_only)

        watched: list[tuple[PartitionLog, int]] = []
        available = 0
        for topic, partitions in wanted:
            for index, offset, _ in partitions:
                partition = self.store.partition(topic, index)
                if partition is None or not partition.log_start_offset <= offset <= partition.next_offset:
                    return build()  # errors are answered at once
                watched.append((partition, offset))
                if not committed_only or offset < partition.last_stable_offset:
                    available += partition.bytes_after(offset)
        if available >= max(request.min_bytes, 1) or request.max_wait_ms <= 0 or not watched:
            return build()
        return FetchWaiter(watched, max(request.min_bytes, 1), build, committed_only).park(request.max_wait_ms)

    def _build_fetch(self, wanted, max_bytes: int, committed_only: bool = False):
        remaining = max_bytes
        first_data = True
        topics = []
        for topic, partitions in wanted:
            results = []
            for index, offset, partition_max_bytes in partitions:
                partition = self.store.partition(topic, index)
                if partition is None:
                    results.append(
                        _FetchPartition(
                            partition_index=index,
                            error_code=errors.UNKNOWN_TOPIC_OR_PARTITION,
                            high_watermark=-1,
                            last_stable_offset=-1,
                            log_start_offset=-1,
                            aborted_transactions=None,
                            preferred_read_replica=-1,
                            records=b"",
                        )
                    )
                    continue
                high_watermark = partition.next_offset
                stable = partition.last_stable_offset
                end = stable if committed_only else high_watermark
                error = errors.NONE
                records = b""
                aborted = None
                if not partition.log_start_offset <= offset <= high_watermark:
                    error = errors.OFFSET_OUT_OF_RANGE
                elif offset < end and remaining > 0:
                    records = partition.read(
                        offset,
                        min(partition_max_bytes, remaining),
                        first_data,
                        stable if committed_only and stable < high_watermark else None,
                    )
                    if records:
                        first_data = False
                        remaining -= len(records)
                        if committed_only and partition.aborted_transactions:
                            aborted = [
                                _FetchPartition.AbortedTransaction(producer_id=producer_id, first_offset=first)
                                for producer_id, first in partition.aborted_between(offset, end)
                            ]
                results.append(
                    _FetchPartition(
                        partition_index=index,
                        error_code=error,
                        high_watermark=high_watermark,
                        last_stable_offset=stable,
                        log_start_offset=partition.log_start_offset,
                        aborted_transactions=aborted,
                        preferred_read_replica=-1,
                        records=records,
                    )
                )
            topics.append(_FetchTopic(topic=topic, partitions=results))
        return FetchResponse(throttle_time_ms=0, error_code=errors.NONE, session_id=0, responses=topics)

    # ---- ListOffsets --------------------------------------------------------------------
    def list_offsets(self, request, ctx: RequestContext):
        topics = []
        for topic in request.topics:
            results = []
            for wanted in topic.partitions:
                partition = self.store.partition(topic.name, wanted.partition_index)
                error, timestamp, offset = errors.NONE, -1, -1
                if partition is None:
                    error = errors.UNKNOWN_TOPIC_OR_PARTITION
                elif wanted.timestamp == LATEST_TIMESTAMP:
                    # read_committed consumers' "end" is the last stable offset.
                    committed_only = ctx.version >= 2 and request.isolation_level == READ_COMMITTED
                    offset = partition.last_stable_offset if committed_only else partition.next_offset
                elif wanted.timestamp == EARLIEST_TIMESTAMP:
                    offset = partition.log_start_offset
                elif wanted.timestamp == MAX_TIMESTAMP:
                    offset, timestamp = partition.max_timestamp_offset()
                else:
                    found = partition.offset_for_timestamp(wanted.timestamp)
                    if found is not None:
                        offset, timestamp = found
                results.append(
                    _ListOffsetsPartition(
                        partition_index=wanted.partition_index,
                        error_code=error,
                        timestamp=timestamp,
                        offset=offset,
                        leader_epoch=0,
                    )
                )
            topics.append(_ListOffsetsTopic(name=topic.name, partitions=results))
        return ListOffsetsResponse(throttle_time_ms=0, topics=topics)

    # ---- Metadata -----------------------------------------------------------------------
    def metadata(self, request, ctx: RequestContext):
        version = ctx.version
        if request.topics is None or (version == 0 and not request.topics):
            names = sorted(self.store.topics)
        else:
            names = []
            by_id = None
            for wanted in request.topics:
                name = wanted.name
                if name is None and version >= 10 and wanted.topic_id is not None:
                    by_id = by_id or {str(topic.topic_id): topic.name for topic in self.store.topics.values()}
                    name = by_id.get(str(wanted.topic_id), "")
                names.append(name)
        allow_auto_create = request.allow_auto_topic_creation if version >= 4 else True
        topics = []
        for name in names:
            topic = self.store.topics.get(name)
            if topic is None:
                problem = topic_name_problem(name)
                if problem is not None:
                    topics.append(
                        _MetadataTopic(
                            error_code=errors.INVALID_TOPIC_EXCEPTION,
                            name=name,
                            topic_id=ZERO_UUID,
                            is_internal=False,
                            partitions=[],
                        )
                    )
                    continue
                if allow_auto_create and self.settings.auto_create:
                    topic = self.store.create_topic(name, self.settings.default_partitions, {})
                else:
                    topics.append(
                        _MetadataTopic(
                            error_code=errors.UNKNOWN_TOPIC_OR_PARTITION,
                            name=name,
                            topic_id=ZERO_UUID,
                            is_internal=False,
                            partitions=[],
                        )
                    )
                    continue
            partitions = [
                _MetadataPartition(
                    error_code=errors.NONE,
                    partition_index=partition.index,
                    leader_id=NODE_ID,
                    leader_epoch=0,
                    replica_nodes=[NODE_ID],
                    isr_nodes=[NODE_ID],
                    offline_replicas=[],
                )
                for partition in topic.partitions
            ]
            topics.append(
                _MetadataTopic(
                    error_code=errors.NONE,
                    name=topic.name,
                    topic_id=topic.topic_id,
                    is_internal=False,
                    partitions=partitions,
                )
            )
        broker = _Metadata.MetadataResponseBroker(
            node_id=NODE_ID, host=self.settings.advertised_host, port=self.settings.advertised_port, rack=None
        )
        return MetadataResponse(
            throttle_time_ms=0,
            brokers=[broker],
            cluster_id=self.settings.cluster_id,
            controller_id=NODE_ID,
            topics=topics,
        )

    # ---- groups -------------------------------------------------------------------------
    def find_coordinator(self, request, ctx: RequestContext):
        # This node coordinates every group and every transactional id.
        key_type = request.key_type if ctx.version >= 1 else COORDINATOR_GROUP
        error = errors.NONE
        message = None
        if key_type not in (COORDINATOR_GROUP, COORDINATOR_TRANSACTION):
            error, message = errors.INVALID_REQUEST, f"unknown coordinator key type {key_type}"
        if ctx.version >= 4:
            coordinators = [
                FindCoordinatorResponse.Coordinator(
                    key=key,
                    node_id=NODE_ID if error == errors.NONE else -1,
                    host=self.settings.advertised_host if error == errors.NONE else "",
                    port=self.settings.advertised_port if error == errors.NONE else -1,
                    error_code=error,
                    error_message=message,
                )
                for key in request.coordinator_keys
            ]
            return FindCoordinatorResponse(throttle_time_ms=0, coordinators=coordinators)
        return FindCoordinatorResponse(
            throttle_time_ms=0,
            error_code=error,
            error_message=message,
            node_id=NODE_ID if error == errors.NONE else -1,
            host=self.settings.advertised_host if error == errors.NONE else "",
            port=self.settings.advertised_port if error == errors.NONE else -1,
        )

    def join_group(self, request, ctx: RequestContext):
        version = ctx.version
        protocols = [(protocol.name, bytes(protocol.metadata)) for protocol in request.protocols]
        rebalance_timeout = request.rebalance_timeout_ms if version >= 1 else request.session_timeout_ms
        result = self.coordinator.join(
            request.group_id,
            request.member_id,
            request.group_instance_id if version >= 5 else None,
            ctx.client_id,
            ctx.client_host,
            request.session_timeout_ms,
            rebalance_timeout,
            request.protocol_type,
            protocols,
            require_known_member_id=version >= 4,
        )

        def encode(joined: JoinResult):
            protocol_name = joined.protocol_name
            if protocol_name is None and version < 7:
                protocol_name = ""
            members = [
                JoinGroupResponse.JoinGroupResponseMember(
                    member_id=member_id, group_instance_id=instance, metadata=metadata
                )
                for member_id, instance, metadata in joined.members
            ]
            return JoinGroupResponse(
                throttle_time_ms=0,
                error_code=joined.error,
                generation_id=joined.generation,
                protocol_type=joined.protocol_type,
                protocol_name=protocol_name,
                leader=joined.leader,
                skip_assignment=False,
                member_id=joined.member_id,
                members=members,
            )

        if isinstance(result, asyncio.Future):
            return _chain(result, lambda: encode(result.result()))
        return encode(result)

    def sync_group(self, request, ctx: RequestContext):
        assignments = {entry.member_id: bytes(entry.assignment) for entry in request.assignments}
        result = self.coordinator.sync(
            request.group_id, request.generation_id, request.member_id, assignments
        )

        def encode(synced: SyncResult):
            return SyncGroupResponse(
                throttle_time_ms=0,
                error_code=synced.error,
                protocol_type=synced.protocol_type,
                protocol_name=synced.protocol_name,
                assignment=synced.assignment,
            )

        if isinstance(result, asyncio.Future):
            return _chain(result, lambda: encode(result.result()))
        return encode(result)

    def heartbeat(self, request, ctx: RequestContext):
        error = self.coordinator.heartbeat(request.group_id, request.generation_id, request.member_id)
        return HeartbeatResponse(throttle_time_ms=0, error_code=error)

    def leave_group(self, request, ctx: RequestContext):
        if ctx.version < 3:
            results = self.coordinator.leave(request.group_id, [(request.member_id, None)])
            return LeaveGroupResponse(throttle_time_ms=0, error_code=results[0][2])
        results = self.coordinator.leave(
            request.group_id, [(member.member_id, member.group_instance_id) for member in request.members]
        )
        members = [
            LeaveGroupResponse.MemberResponse(
                member_id=member_id, group_instance_id=instance, error_code=error
            )
            for member_id, instance, error in results
        ]
        return LeaveGroupResponse(throttle_time_ms=0, error_code=errors.NONE, members=members)

    def offset_commit(self, request, ctx: RequestContext):
        version = ctx.version
        generation = request.generation_id_or_member_epoch if version >= 1 else -1
        member_id = request.member_id if version >= 1 else ""
        offsets = []
        unknown = set()
        for topic in request.topics:
            for partition in topic.partitions:
                if self.store.partition(topic.name, partition.partition_index) is None:
                    unknown.add((topic.name, partition.partition_index))
                    continue
                leader_epoch = partition.committed_leader_epoch if version >= 6 else -1
                offsets.append(
                    (
                        topic.name,
                        partition.partition_index,
                        partition.committed_offset,
                        partition.committed_metadata,
                        leader_epoch,
                    )
                )
        error = self.coordinator.commit_offsets(request.group_id, generation, member_id, offsets)
        topics = [
            _CommitTopic(
                name=topic.name,
                partitions=[
                    _CommitPartition(
                        partition_index=partition.partition_index,
                        error_code=errors.UNKNOWN_TOPIC_OR_PARTITION
                        if (topic.name, partition.partition_index) in unknown
                        else error,
                    )
                    for partition in topic.partitions
                ],
            )
            for topic in request.topics
        ]
        response = OffsetCommitResponse(throttle_time_ms=0, topics=topics)
        durable = None
        if error == errors.NONE and offsets and self.store.durable:
            self.store.mark_fd_dirty(self.coordinator.offsets.fd)
            durable = self._wait_durable(True)
        return response if durable is None else _chain(durable, lambda: response)

    def offset_fetch(self, request, ctx: RequestContext):
        require_stable = ctx.version >= 7 and request.require_stable
        if ctx.version < 8:
            topics = self._fetched_offsets(
                request.group_id, request.topics, require_stable, _OffsetFetchTopic, _OffsetFetchPartition
            )
            return OffsetFetchResponse(throttle_time_ms=0, topics=topics, error_code=errors.NONE)
        group_class = OffsetFetchResponse.OffsetFetchResponseGroup
        topic_class = group_class.OffsetFetchResponseTopics
        groups = [
            group_class(
                group_id=group.group_id,
                topics=self._fetched_offsets(
                    group.group_id,
                    group.topics,
                    require_stable,
                    topic_class,
                    topic_class.OffsetFetchResponsePartitions,
                ),
                error_code=errors.NONE,
            )
            for group in request.groups
        ]
        return OffsetFetchResponse(throttle_time_ms=0, groups=groups)

    def _fetched_offsets(self, group_id: str, topics, require_stable: bool, topic_class, partition_class):
        wanted = None
        if topics is not None:
            wanted = [(topic.name, index) for topic in topics for index in topic.partition_indexes]
        # KIP-447: a partition whose offset is still inside an open transaction is unstable.
        unstable = self.transactions.pending_offsets(group_id) if require_stable else set()
        grouped: dict[str, list] = {}
        for topic, index, committed in self.coordinator.fetch_offsets(group_id, wanted):
            grouped.setdefault(topic, []).append(
                partition_class(
                    partition_index=index,
                    committed_offset=committed.offset if committed else -1,
                    committed_leader_epoch=committed.leader_epoch if committed else -1,
                    metadata=(committed.metadata if committed else "") or "",
                    error_code=UNSTABLE_OFFSET_COMMIT if (topic, index) in unstable else errors.NONE,
                )
            )
        return [topic_class(name=name, partitions=partitions) for name, partitions in grouped.items()]

    def describe_groups(self, request, ctx: RequestContext):
        described = []
        for group_id in request.groups:
            group = self.coordinator.describe(group_id)
            if group is None:
                described.append(
                    _DescribedGroup(
                        error_code=errors.NONE,
                        group_id=group_id,
                        group_state="Dead",
                        protocol_type="",
                        protocol_data="",
                        members=[],
                    )
                )
                continue
            members = [
                _DescribedMember(
                    member_id=member.member_id,
                    group_instance_id=member.group_instance_id,
                    client_id=member.client_id,
                    client_host=member.client_host,
                    member_metadata=member.metadata_for(group.protocol_name),
                    member_assignment=member.assignment,
                )
                for member in group.members.values()
            ]
            described.append(
                _DescribedGroup(
                    error_code=errors.NONE,
                    group_id=group_id,
                    group_state=group.state.value,
                    protocol_type=group.protocol_type or "",
                    protocol_data=group.protocol_name or "",
                    members=members,
                )
            )
        return DescribeGroupsResponse(throttle_time_ms=0, groups=described)

    def list_groups(self, request, ctx: RequestContext):
        states = {state.lower() for state in (request.states_filter or [])} if ctx.version >= 4 else set()
        listed = [
            ListGroupsResponse.ListedGroup(
                group_id=group.group_id,
                protocol_type=group.protocol_type or "",
                group_state=group.state.value,
                group_type="classic",
            )
            for group in self.coordinator.groups.values()
            if not states or group.state.value.lower() in states
        ]
        return ListGroupsResponse(throttle_time_ms=0, error_code=errors.NONE, groups=listed)

    def delete_groups(self, request, ctx: RequestContext):
        results = [
            DeleteGroupsResponse.DeletableGroupResult(
                group_id=group_id, error_code=self.coordinator.delete_group(group_id)
            )
            for group_id in request.groups_names
        ]
        return DeleteGroupsResponse(throttle_time_ms=0, results=results)

    # ---- producers ----------------------------------------------------------------------
    def _allocate_producer_id(self) -> int:
        producer_id = self.next_producer_id
        self.next_producer_id += 1
        return producer_id

    def init_producer_id(self, request, ctx: RequestContext):
        if request.transactional_id is not None:
            error, producer_id, epoch = self.transactions.init_producer_id(
                request.transactional_id,
                request.transaction_timeout_ms,
                request.producer_id if ctx.version >= 3 else -1,
                request.producer_epoch if ctx.version >= 3 else -1,
            )
            response = InitProducerIdResponse(
                throttle_time_ms=0,
                error_code=self._fenced_error(error, ctx.version, 4),
                producer_id=producer_id,
                producer_epoch=epoch,
            )
            return self._after_transaction_log(response)
        if ctx.version >= 3 and request.producer_id >= 0:
            # KIP-360: a producer bumping its own epoch keeps its id.
            producer_id, epoch = request.producer_id, request.producer_epoch + 1
            if epoch > 0x7FFF:
                producer_id, epoch = self.next_producer_id, 0
                self.next_producer_id += 1
        else:
            producer_id, epoch = self.next_producer_id, 0
            self.next_producer_id += 1
        return InitProducerIdResponse(
            throttle_time_ms=0, error_code=errors.NONE, producer_id=producer_id, producer_epoch=epoch
        )

    # ---- transactions -------------------------------------------------------------------
    @staticmethod
    def _fenced_error(error: int, version: int, first_version_with_fenced: int) -> int:
        # PRODUCER_FENCED is new in KIP-588; older request versions get INVALID_PRODUCER_EPOCH.
        if error == transactions.PRODUCER_FENCED and version < first_version_with_fenced:
            return errors.INVALID_PRODUCER_EPOCH
        return error

    def _after_transaction_log(self, response):
        """Answer once the transaction log, offsets and markers written so far are on disk."""
        if not self.store.durable:
            return response
        self.store.mark_fd_dirty(self.transactions.log.fd)
        self.store.mark_fd_dirty(self.coordinator.offsets.fd)
        durable = self._wait_durable(True)
        return response if durable is None else _chain(durable, lambda: response)

    def _write_marker(self, topic: str, index: int, producer_id: int, epoch: int, commit: bool) -> bool:
        partition = self.store.partition(topic, index)
        if partition is None:
            return False
        batch = build_control_batch(producer_id, epoch, commit, 0, int(time.time() * 1000))
        partition.append(batch, parse_batches(batch))
        self.store.mark_dirty(partition)
        for waiter in tuple(partition.waiters):
            waiter.wake()
        return True

    def add_partitions_to_txn(self, request, ctx: RequestContext):
        wanted = [(topic.name, index) for topic in request.v3_and_below_topics for index in topic.partitions]
        results = self.transactions.add_partitions(
            request.v3_and_below_transactional_id,
            request.v3_and_below_producer_id,
            request.v3_and_below_producer_epoch,
            wanted,
            lambda topic, index: self.store.partition(topic, index) is not None,
        )
        topic_class = AddPartitionsToTxnResponse.AddPartitionsToTxnTopicResult
        by_topic: dict[str, list] = {}
        for (topic, index), error in results.items():
            by_topic.setdefault(topic, []).append(
                topic_class.AddPartitionsToTxnPartitionResult(
                    partition_index=index, partition_error_code=self._fenced_error(error, ctx.version, 2)
                )
            )
        response = AddPartitionsToTxnResponse(
            throttle_time_ms=0,
            results_by_topic_v3_and_below=[
                topic_class(name=name, results_by_partition=partitions) for name, partitions in by_topic.items()
            ],
        )
        return self._after_transaction_log(response)

    def add_offsets_to_txn(self, request, ctx: RequestContext):
        error = self.transactions.add_offsets(
            request.transactional_id, request.producer_id, request.producer_epoch, request.group_id
        )
        response = AddOffsetsToTxnResponse(throttle_time_ms=0, error_code=self._fenced_error(error, ctx.version, 2))
        return self._after_transaction_log(response)

    def txn_offset_commit(self, request, ctx: RequestContext):
        version = ctx.version
        offsets = []
        unknown = set()
        for topic in request.topics:
            for partition in topic.partitions:
                if self.store.partition(topic.name, partition.partition_index) is None:
                    unknown.add((topic.name, partition.partition_index))
                    continue
                offsets.append(
                    (
                        topic.name,
                        partition.partition_index,
                        partition.committed_offset,
                        partition.committed_metadata,
                        partition.committed_leader_epoch if version >= 2 else -1,
                    )
                )
        error = errors.NONE
        if version >= 3 and request.generation_id >= 0:
            # KIP-447: a consumer that lost its partitions in a rebalance cannot commit.
            error = self.coordinator.check_member(request.group_id, request.generation_id, request.member_id)
        if error == errors.NONE:
            error = self.transactions.txn_offset_commit(
                request.transactional_id, request.group_id, request.producer_id, request.producer_epoch, offsets
            )
        error = self._fenced_error(error, version, 3)
        partition_class = TxnOffsetCommitResponse.TxnOffsetCommitResponseTopic.TxnOffsetCommitResponsePartition
        topics = [
            TxnOffsetCommitResponse.TxnOffsetCommitResponseTopic(
                name=topic.name,
                partitions=[
                    partition_class(
                        partition_index=partition.partition_index,
                        error_code=errors.UNKNOWN_TOPIC_OR_PARTITION
                        if (topic.name, partition.partition_index) in unknown
                        else error,
                    )
                    for partition in topic.partitions
                ],
            )
            for topic in request.topics
        ]
        return self._after_transaction_log(TxnOffsetCommitResponse(throttle_time_ms=0, topics=topics))

    def end_txn(self, request, ctx: RequestContext):
        error = self.transactions.end_txn(
            request.transactional_id, request.producer_id, request.producer_epoch, request.committed
        )
        response = EndTxnResponse(throttle_time_ms=0, error_code=self._fenced_error(error, ctx.version, 2))
        return self._after_transaction_log(response)

    def describe_producers(self, request, ctx: RequestContext):
        topic_class = DescribeProducersResponse.TopicResponse
        partition_class = topic_class.PartitionResponse
        topics = []
        for topic in request.topics:
            partitions = []
            for index in topic.partition_indexes:
                partition = self.store.partition(topic.name, index)
                if partition is None:
                    partitions.append(
                        partition_class(
                            partition_index=index,
                            error_code=errors.UNKNOWN_TOPIC_OR_PARTITION,
                            error_message="The partition does not exist.",
                            active_producers=[],
                        )
                    )
                    continue
                producers = [
                    partition_class.ProducerState(
                        producer_id=producer_id,
                        producer_epoch=state.epoch,
                        last_sequence=state.last_sequence,
                        last_timestamp=-1,
                        coordinator_epoch=0,
                        current_txn_start_offset=partition.open_transactions.get(producer_id, -1),
                    )
                    for producer_id, state in sorted(partition.producers.items())
                ]
                partitions.append(
                    partition_class(
                        partition_index=index, error_code=errors.NONE, error_message=None, active_producers=producers
                    )
                )
            topics.append(topic_class(name=topic.name, partitions=partitions))
        return DescribeProducersResponse(throttle_time_ms=0, topics=topics)

    def describe_transactions(self, request, ctx: RequestContext):
        state_class = DescribeTransactionsResponse.TransactionState
        states = []
        for transactional_id in request.transactional_ids:
            transaction = self.transactions.transactions.get(transactional_id)
            if transaction is None:
                states.append(
                    state_class(
                        error_code=TRANSACTIONAL_ID_NOT_FOUND,
                        transactional_id=transactional_id,
                        transaction_state="",
                        transaction_timeout_ms=0,
                        transaction_start_time_ms=-1,
                        producer_id=-1,
                        producer_epoch=-1,
                        topics=[],
                    )
                )
                continue
            by_topic: dict[str, list[int]] = {}
            for topic, index in sorted(transaction.partitions):
                by_topic.setdefault(topic, []).append(index)
            states.append(
                state_class(
                    error_code=errors.NONE,
                    transactional_id=transactional_id,
                    transaction_state=transaction.state.value,
                    transaction_timeout_ms=transaction.timeout_ms,
                    transaction_start_time_ms=transaction.started_ms,
                    producer_id=transaction.producer_id,
                    producer_epoch=transaction.producer_epoch,
                    topics=[
                        state_class.TopicData(topic=topic, partitions=indexes) for topic, indexes in by_topic.items()
                    ],
                )
            )
        return DescribeTransactionsResponse(throttle_time_ms=0, transaction_states=states)

    def list_transactions(self, request, ctx: RequestContext):
        known = {state.value for state in transactions.TxnState}
        wanted_states = set(request.state_filters or [])
        wanted_ids = set(request.producer_id_filters or [])
        listed = [
            ListTransactionsResponse.TransactionState(
                transactional_id=transaction.transactional_id,
                producer_id=transaction.producer_id,
                transaction_state=transaction.state.value,
            )
            for transaction in self.transactions.transactions.values()
            if (not wanted_states or transaction.state.value in wanted_states)
            and (not wanted_ids or transaction.producer_id in wanted_ids)
        ]
        return ListTransactionsResponse(
            throttle_time_ms=0,
            error_code=errors.NONE,
            unknown_state_filters=sorted(wanted_states - known),
            transaction_states=listed,
        )

    def abort_expired_transactions(self) -> None:
        if self.transactions.abort_expired() and self.store.durable:
            self.store.mark_fd_dirty(self.transactions.log.fd)

    # ---- topics admin -------------------------------------------------------------------
    def create_topics(self, request, ctx: RequestContext):
        version = ctx.version
        results = []
        for wanted in request.topics:
            configs = {entry.name: entry.value for entry in (wanted.configs or [])}
            count = wanted.num_partitions
            if wanted.assignments:
                count = len(wanted.assignments)
            elif count == -1:
                count = self.settings.default_partitions
            error, message = errors.NONE, None
            if topic_name_problem(wanted.name):
                error, message = errors.INVALID_TOPIC_EXCEPTION, topic_name_problem(wanted.name)
            elif wanted.name in self.store.topics:
                error, message = errors.TOPIC_ALREADY_EXISTS, f"topic {wanted.name!r} already exists"
            elif count < 1:
                error, message = (
                    errors.INVALID_PARTITIONS,
                    f"number of partitions must be at least 1, got {count}",
                )
            elif wanted.replication_factor not in (-1, 1) and not wanted.assignments:
                error, message = (
                    errors.INVALID_REPLICATION_FACTOR,
                    f"replication factor {wanted.replication_factor} exceeds the 1 broker available",
                )
            elif validate_topic_configs(configs):
                error, message = errors.INVALID_CONFIG, validate_topic_configs(configs)
            topic_id = ZERO_UUID
            if error == errors.NONE and not (version >= 1 and request.validate_only):
                stored = {key: value for key, value in configs.items() if value is not None}
                topic_id = self.store.create_topic(wanted.name, count, stored).topic_id
            result_configs = None
            if version >= 5 and error == errors.NONE:
                effective = {**DEFAULT_TOPIC_CONFIGS, **{k: v for k, v in configs.items() if v is not None}}
                result_configs = [
                    _CreatedTopicConfig(
                        name=key,
                        value=value,
                        read_only=False,
                        config_source=DYNAMIC_TOPIC_CONFIG if key in configs else DEFAULT_CONFIG,
                        is_sensitive=False,
                    )
                    for key, value in sorted(effective.items())
                ]
            results.append(
                _CreatedTopic(
                    name=wanted.name,
                    topic_id=topic_id,
                    error_code=error,
                    error_message=message,
                    num_partitions=count if error == errors.NONE else -1,
                    replication_factor=1 if error == errors.NONE else -1,
                    configs=result_configs,
                )
            )
        return CreateTopicsResponse(throttle_time_ms=0, topics=results)

    def delete_topics(self, request, ctx: RequestContext):
        version = ctx.version
        if version >= 6:
            wanted = []
            by_id = {str(topic.topic_id): name for name, topic in self.store.topics.items()}
            for entry in request.topics:
                name = entry.name
                if name is None and entry.topic_id is not None:
                    name = by_id.get(str(entry.topic_id))
                wanted.append((name, entry.topic_id))
        else:
            wanted = [(name, None) for name in request.topic_names]
        results = []
        for name, topic_id in wanted:
            topic = self.store.topics.get(name) if name is not None else None
            if topic is None:
                error = errors.UNKNOWN_TOPIC_ID if name is None else errors.UNKNOWN_TOPIC_OR_PARTITION
                results.append(
                    DeleteTopicsResponse.DeletableTopicResult(
                        name=name,
                        topic_id=topic_id or ZERO_UUID,
                        error_code=error,
                        error_message="unknown topic",
                    )
                )
                continue
            real_id = topic.topic_id
            for partition in topic.partitions:
                for waiter in tuple(partition.waiters):
                    waiter.wake()
            self.store.delete_topic(name)
            self.coordinator.offsets.forget_topic(name)
            results.append(
                DeleteTopicsResponse.DeletableTopicResult(
                    name=name, topic_id=real_id, error_code=errors.NONE, error_message=None
                )
            )
        return DeleteTopicsResponse(throttle_time_ms=0, responses=results)

    def create_partitions(self, request, ctx: RequestContext):
        results = []
        for wanted in request.topics:
            topic = self.store.topics.get(wanted.name)
            error, message = errors.NONE, None
            if topic is None:
                error, message = errors.UNKNOWN_TOPIC_OR_PARTITION, "unknown topic"
            elif wanted.count <= len(topic.partitions):
                error, message = (
                    errors.INVALID_PARTITIONS,
                    f"topic has {len(topic.partitions)} partitions; {wanted.count} is not more",
                )
            elif not request.validate_only:
                self.store.add_partitions(wanted.name, wanted.count)
            results.append(
                CreatePartitionsResponse.CreatePartitionsTopicResult(
                    name=wanted.name, error_code=error, error_message=message
                )
            )
        return CreatePartitionsResponse(throttle_time_ms=0, results=results)

    def describe_configs(self, request, ctx: RequestContext):
        results = []
        for resource in request.resources:
            keys = set(resource.configuration_keys) if resource.configuration_keys is not None else None
            if resource.resource_type == RESOURCE_TOPIC:
                topic = self.store.topics.get(resource.resource_name)
                if topic is None:
                    results.append(
                        _ConfigResult(
                            error_code=errors.UNKNOWN_TOPIC_OR_PARTITION,
                            error_message="unknown topic",
                            resource_type=resource.resource_type,
                            resource_name=resource.resource_name,
                            configs=[],
                        )
                    )
                    continue
                defaults = dict(DEFAULT_TOPIC_CONFIGS)
                if "compact" in topic.configs.get("cleanup.policy", ""):
                    defaults.update(self.store.compact_defaults)
                values = {
                    key: (value, key not in topic.configs) for key, value in {**defaults, **topic.configs}.items()
                }
                set_source = DYNAMIC_TOPIC_CONFIG
            elif resource.resource_type == RESOURCE_BROKER:
                values = {key: (value, True) for key, value in self._broker_configs().items()}
                set_source = STATIC_BROKER_CONFIG
            else:
                results.append(
                    _ConfigResult(
                        error_code=errors.INVALID_REQUEST,
                        error_message=f"resource type {resource.resource_type} not supported",
                        resource_type=resource.resource_type,
                        resource_name=resource.resource_name,
                        configs=[],
                    )
                )
                continue
            entries = [
                _ConfigEntry(
                    name=key,
                    value=value,
                    read_only=False,
                    config_source=DEFAULT_CONFIG if is_default else set_source,
                    is_default=is_default,
                    is_sensitive=False,
                    synonyms=[],
                    config_type=BROKER_CONFIG_TYPES.get(
                        key, CONFIG_TYPE_LONG if key in INTEGER_TOPIC_CONFIGS else CONFIG_TYPE_STRING
                    )
                    if resource.resource_type == RESOURCE_BROKER
                    else CONFIG_TYPE_LONG
                    if key in INTEGER_TOPIC_CONFIGS
                    else CONFIG_TYPE_STRING,
                    documentation=None,
                )
                for key, (value, is_default) in sorted(values.items())
                if keys is None or key in keys
            ]
            results.append(
                _ConfigResult(
                    error_code=errors.NONE,
                    error_message=None,
                    resource_type=resource.resource_type,
                    resource_name=resource.resource_name,
                    configs=entries,
                )
            )
        return DescribeConfigsResponse(throttle_time_ms=0, results=results)

    def _broker_configs(self) -> dict[str, str]:
        listener = f"PLAINTEXT://{self.settings.advertised_host}:{self.settings.advertised_port}"
        return {
            "advertised.listeners": listener,
            "auto.create.topics.enable": str(self.settings.auto_create).lower(),
            "broker.id": str(NODE_ID),
            "compression.type": DEFAULT_TOPIC_CONFIGS["compression.type"],
            "default.replication.factor": "1",
            "delete.topic.enable": "true",
            "group.initial.rebalance.delay.ms": str(self.settings.group_initial_rebalance_delay_ms),
            "group.max.session.timeout.ms": str(self.coordinator.max_session_timeout_ms),
            "group.min.session.timeout.ms": str(self.coordinator.min_session_timeout_ms),
            "inter.broker.protocol.version": KAFKA_RELEASE.rsplit(".", 1)[0],
            "listeners": listener,
            "log.cleaner.enable": "true",
            "log.cleanup.policy": DEFAULT_TOPIC_CONFIGS["cleanup.policy"],
            "log.dirs": self.log_dir(),
            "log.message.format.version": KAFKA_RELEASE.rsplit(".", 1)[0],
            "log.retention.bytes": DEFAULT_TOPIC_CONFIGS["retention.bytes"],
            "log.retention.ms": DEFAULT_TOPIC_CONFIGS["retention.ms"],
            "log.roll.ms": DEFAULT_TOPIC_CONFIGS["segment.ms"],
            "log.segment.bytes": DEFAULT_TOPIC_CONFIGS["segment.bytes"],
            "message.max.bytes": DEFAULT_TOPIC_CONFIGS["max.message.bytes"],
            "min.insync.replicas": "1",
            "num.partitions": str(self.settings.default_partitions),
            "offsets.topic.replication.factor": "1",
            "transaction.max.timeout.ms": str(self.transactions.max_timeout_ms),
            "transaction.state.log.replication.factor": "1",
            "unclean.leader.election.enable": "false",
        }
