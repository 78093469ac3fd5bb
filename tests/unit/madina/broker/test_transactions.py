"""The transaction coordinator's state machine and the partition side of transactions
(last stable offset, aborted-transaction index, fencing by marker epoch), without a network."""

from __future__ import annotations

from pathlib import Path

from madina.broker import errors
from madina.broker.partition import PartitionLog
from madina.broker.records import (
    TRANSACTIONAL_FLAG,
    build_control_batch,
    control_type,
    parse_batches,
    read_header,
)
from madina.broker.transactions import (
    INVALID_PRODUCER_ID_MAPPING,
    INVALID_TXN_STATE,
    PRODUCER_FENCED,
    TransactionCoordinator,
    TransactionLog,
    TxnState,
)


class Recorder:
    """Stands in for the partitions and the group coordinator."""

    def __init__(self):
        self.markers: list[tuple[str, int, int, int, bool]] = []
        self.offsets: list[tuple[str, list]] = []
        self.next_id = 1000

    def write_marker(self, topic, index, producer_id, epoch, commit) -> bool:
        self.markers.append((topic, index, producer_id, epoch, commit))
        return True

    def apply_offsets(self, group, offsets) -> None:
        self.offsets.append((group, offsets))

    def allocate(self) -> int:
        self.next_id += 1
        return self.next_id


def coordinator(data_dir: Path | None = None, recorder: Recorder | None = None):
    recorder = recorder or Recorder()
    log = TransactionLog(str(data_dir) if data_dir else None)
    made = TransactionCoordinator(log, recorder.write_marker, recorder.apply_offsets, recorder.allocate)
    made.load()
    return made, recorder


def exists(_topic, _index) -> bool:
    return True


def test_commit_writes_commit_markers_and_applies_the_pending_offsets():
    txns, recorder = coordinator()
    error, pid, epoch = txns.init_producer_id("t1", 60_000)
    assert (error, epoch) == (errors.NONE, 0)
    assert set(txns.add_partitions("t1", pid, epoch, [("a", 0), ("a", 1)], exists).values()) == {errors.NONE}
    assert txns.add_offsets("t1", pid, epoch, "g") == errors.NONE
    assert txns.txn_offset_commit("t1", "g", pid, epoch, [("in", 0, 42, "m", -1)]) == errors.NONE
    assert txns.pending_offsets("g") == {("in", 0)}
    assert txns.end_txn("t1", pid, epoch, commit=True) == errors.NONE
    assert recorder.markers == [("a", 0, pid, 0, True), ("a", 1, pid, 0, True)]
    assert recorder.offsets == [("g", [("in", 0, 42, "m", -1)])]
    assert txns.transactions["t1"].state is TxnState.COMPLETE_COMMIT
    assert txns.pending_offsets("g") == set()


def test_abort_writes_abort_markers_and_drops_the_pending_offsets():
    txns, recorder = coordinator()
    _, pid, epoch = txns.init_producer_id("t1", 60_000)
    txns.add_partitions("t1", pid, epoch, [("a", 0)], exists)
    txns.add_offsets("t1", pid, epoch, "g")
    txns.txn_offset_commit("t1", "g", pid, epoch, [("in", 0, 42, None, -1)])
    assert txns.end_txn("t1", pid, epoch, commit=False) == errors.NONE
    assert recorder.markers == [("a", 0, pid, 0, False)]
    assert recorder.offsets == []
    # A retried EndTxn gets the same answer; the opposite one is refused.
    assert txns.end_txn("t1", pid, epoch, commit=False) == errors.NONE
    assert txns.end_txn("t1", pid, epoch, commit=True) == INVALID_TXN_STATE


def test_a_new_incarnation_aborts_the_open_transaction_and_fences_the_old_producer():
    txns, recorder = coordinator()
    _, pid, old_epoch = txns.init_producer_id("t1", 60_000)
    txns.add_partitions("t1", pid, old_epoch, [("a", 0)], exists)
    error, same_pid, new_epoch = txns.init_producer_id("t1", 60_000)
    assert error == errors.NONE and same_pid == pid and new_epoch > old_epoch
    # Aborted at a bumped epoch, so the partitions refuse the old epoch from now on.
    assert recorder.markers == [("a", 0, pid, old_epoch + 1, False)]
    assert txns.end_txn("t1", pid, old_epoch, commit=True) == PRODUCER_FENCED
    assert txns.add_offsets("t1", pid, old_epoch, "g") == PRODUCER_FENCED
    assert txns.add_offsets("t1", pid + 1, new_epoch, "g") == INVALID_PRODUCER_ID_MAPPING
    assert txns.add_offsets("t1", pid, new_epoch, "g") == errors.NONE


def test_invalid_timeouts_are_refused():
    txns, _ = coordinator()
    assert txns.init_producer_id("t1", 0)[0] == errors.INVALID_TRANSACTION_TIMEOUT
    assert txns.init_producer_id("t1", 900_001)[0] == errors.INVALID_TRANSACTION_TIMEOUT


def test_a_transaction_open_past_its_timeout_is_aborted_and_its_producer_fenced():
    txns, recorder = coordinator()
    _, pid, epoch = txns.init_producer_id("t1", 1_000)
    txns.add_partitions("t1", pid, epoch, [("a", 0)], exists)
    started = txns.transactions["t1"].started_ms
    assert txns.abort_expired(started + 500) == []
    assert txns.abort_expired(started + 1_001) == ["t1"]
    assert recorder.markers == [("a", 0, pid, epoch + 1, False)]
    assert txns.end_txn("t1", pid, epoch, commit=True) == PRODUCER_FENCED


def test_unknown_partitions_fail_the_whole_add_without_starting_a_transaction():
    txns, _ = coordinator()
    _, pid, epoch = txns.init_producer_id("t1", 60_000)
    results = txns.add_partitions("t1", pid, epoch, [("a", 0), ("gone", 0)], lambda topic, _i: topic == "a")
    assert results == {("a", 0): 55, ("gone", 0): errors.UNKNOWN_TOPIC_OR_PARTITION}
    assert txns.transactions["t1"].state is TxnState.EMPTY


def test_state_survives_a_restart_and_a_prepare_left_by_a_crash_is_completed(tmp_path: Path):
    txns, _ = coordinator(tmp_path)
    _, pid, epoch = txns.init_producer_id("t1", 60_000)
    txns.add_partitions("t1", pid, epoch, [("a", 0)], exists)
    txns.add_offsets("t1", pid, epoch, "g")
    txns.txn_offset_commit("t1", "g", pid, epoch, [("in", 0, 7, None, -1)])
    # Simulate a crash right after PrepareCommit was logged: write it, never complete.
    transaction = txns.transactions["t1"]
    transaction.state = TxnState.PREPARE_COMMIT
    txns.log.write(transaction)
    txns.log.close()

    recovered, recorder = coordinator(tmp_path)
    assert recovered.transactions["t1"].state is TxnState.COMPLETE_COMMIT
    assert recorder.markers == [("a", 0, pid, epoch, True)]
    assert recorder.offsets == [("g", [("in", 0, 7, None, -1)])]
    assert recovered.highest_producer_id == pid
    recovered.log.close()

    # An Ongoing transaction stays open across a restart until its timeout or its producer.
    again, _ = coordinator(tmp_path)
    _, pid, epoch = again.init_producer_id("t2", 60_000)
    again.add_partitions("t2", pid, epoch, [("a", 0)], exists)
    again.log.close()
    reloaded, recorder = coordinator(tmp_path)
    assert reloaded.transactions["t2"].state is TxnState.ONGOING
    assert recorder.markers == []
    reloaded.log.close()


def _transactional_batch(producer_id: int, epoch: int, sequence: int, count: int = 2) -> bytes:
    from kafka.record.default_records import DefaultRecordBatchBuilder

    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=1,
        producer_id=producer_id,
        producer_epoch=epoch,
        base_sequence=sequence,
        batch_size=1 << 20,
    )
    for number in range(count):
        builder.append(number, timestamp=1000 + number, key=None, value=b"v%d" % number, headers=[])
    return bytes(builder.build())


def _append(partition: PartitionLog, batch: bytes) -> int:
    return partition.append(batch, parse_batches(batch))


def test_control_batches_carry_their_marker_type():
    batch = build_control_batch(7, 3, commit=False, coordinator_epoch=0, timestamp_ms=1)
    header = read_header(batch)
    assert header.attributes & TRANSACTIONAL_FLAG
    assert control_type(batch, header) == 0


def test_partition_tracks_last_stable_offset_and_aborted_transactions(tmp_path: Path):
    partition = PartitionLog("t", 0, tmp_path / "t-0", {})
    partition.open_empty()
    _append(partition, _transactional_batch(5, 0, 0))  # offsets 0-1, producer 5 (to be aborted)
    _append(partition, _transactional_batch(6, 0, 0))  # offsets 2-3, producer 6 (to be committed)
    assert partition.last_stable_offset == 0
    _append(partition, build_control_batch(5, 0, False, 0, 1))  # offset 4
    assert partition.last_stable_offset == 2
    _append(partition, build_control_batch(6, 0, True, 0, 1))  # offset 5
    assert partition.last_stable_offset == partition.next_offset == 6
    assert partition.aborted_between(0, 6) == [(5, 0)]
    assert partition.aborted_between(5, 6) == []
    # read_committed reads stop before the first open transaction's batch.
    _append(partition, _transactional_batch(5, 0, 2))  # offsets 6-7, open
    assert partition.last_stable_offset == 6
    assert partition.read(6, 1 << 20, True, end_offset=6) == b""
    assert len(parse_batches(partition.read(0, 1 << 20, True, end_offset=6))) == 4
    partition.close()

    recovered = PartitionLog("t", 0, tmp_path / "t-0", {})
    recovered.recover()
    assert recovered.aborted_transactions == [(5, 0, 4)]
    assert recovered.open_transactions == {5: 6}
    recovered.close()


def test_a_marker_at_a_bumped_epoch_fences_the_old_epoch(tmp_path: Path):
    partition = PartitionLog("t", 0, None, {})
    partition.open_empty()
    _append(partition, _transactional_batch(5, 0, 0))
    _append(partition, build_control_batch(5, 1, False, 0, 1))
    late = parse_batches(_transactional_batch(5, 0, 2))[0]
    assert partition.check_producer(late)[0] == errors.INVALID_PRODUCER_EPOCH
    fresh = parse_batches(_transactional_batch(5, 1, 0))[0]
    assert partition.check_producer(fresh)[0] == errors.NONE


def _keyed_transactional(producer_id: int, sequence: int, key: bytes, value: bytes) -> bytes:
    from kafka.record.default_records import DefaultRecordBatchBuilder

    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=1,
        producer_id=producer_id,
        producer_epoch=0,
        base_sequence=sequence,
        batch_size=1 << 20,
    )
    builder.append(0, timestamp=1000, key=key, value=value + b"." * 200, headers=[])
    return bytes(builder.build())


def _values(partition: PartitionLog) -> list[bytes]:
    from madina.broker.cleaner import decode_records

    seen = []
    offset = 0
    while offset < partition.next_offset:
        data = partition.read(offset, 1 << 30, True)
        if not data:
            break
        for header in parse_batches(data):
            offset = header.base_offset + header.offset_count
            if not header.attributes & 0x20:
                seen += [record.value[:1] for record in decode_records(data, header)]
    return seen


def test_compaction_drops_aborted_records_and_stops_at_an_open_transaction():
    partition = PartitionLog("t", 0, None, {"cleanup.policy": "compact", "segment.bytes": "300"})
    partition.open_empty()
    _append(partition, _keyed_transactional(1, 0, b"k", b"a"))  # committed
    _append(partition, build_control_batch(1, 0, True, 0, 1))
    _append(partition, _keyed_transactional(2, 0, b"k", b"b"))  # aborted: must not win
    _append(partition, build_control_batch(2, 0, False, 0, 1))
    _append(partition, _keyed_transactional(3, 0, b"j", b"c"))  # committed later
    _append(partition, build_control_batch(3, 0, True, 0, 1))
    assert len(partition.segments) > 2
    partition.clean_now(now_ms=10**13)
    assert _values(partition) == [b"a", b"c"]

    # An open transaction holds the cleaner back from its first segment onwards.
    _append(partition, _keyed_transactional(4, 0, b"k", b"d"))
    _append(partition, _keyed_transactional(5, 0, b"k", b"e"))
    _append(partition, build_control_batch(5, 0, True, 0, 1))
    _append(partition, _keyed_transactional(6, 0, b"z", b"f"))
    stable = partition.last_stable_offset
    plan = partition.plan_cleaning(10**13, force=True)
    assert plan is not None and all(segment.next_offset <= stable for segment in plan[1])


def test_only_partitions_added_to_the_open_transaction_take_its_batches():
    txns, _ = coordinator()
    _, pid, epoch = txns.init_producer_id("t1", 60_000)
    assert not txns.has_partition(pid, epoch, "a", 0)
    txns.add_partitions("t1", pid, epoch, [("a", 0)], exists)
    assert txns.has_partition(pid, epoch, "a", 0)
    assert not txns.has_partition(pid, epoch, "a", 1)
    assert not txns.has_partition(pid, epoch - 1, "a", 0)
    txns.end_txn("t1", pid, epoch, commit=True)
    assert not txns.has_partition(pid, epoch, "a", 0)
