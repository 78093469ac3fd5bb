"""Partition logs: offsets, reads by index, idempotent producers, retention and recovery."""

from __future__ import annotations

import os
import time

from madina.broker import errors
from madina.broker.partition import PartitionLog
from madina.broker.records import parse_batches
from tests.unit.madina.broker.test_records import build_batch


def append(partition: PartitionLog, count: int = 3, **batch_options) -> int:
    records = build_batch(count, **batch_options)
    return partition.append(records, parse_batches(records))


def memory_partition(**configs) -> PartitionLog:
    partition = PartitionLog("t", 0, None, {key.replace("_", "."): value for key, value in configs.items()})
    partition.open_empty()
    return partition


def test_appends_get_consecutive_offsets_patched_into_the_stored_batch():
    partition = memory_partition()
    assert [append(partition, 3), append(partition, 2), append(partition, 4)] == [0, 3, 5]
    assert partition.next_offset == 9
    stored = partition.read(3, 1 << 20, True)
    assert [header.base_offset for header in parse_batches(stored)] == [3, 5]


def test_a_read_from_the_middle_of_a_batch_starts_at_that_whole_batch():
    partition = memory_partition()
    append(partition, 3)
    append(partition, 3)
    assert parse_batches(partition.read(4, 1 << 20, True))[0].base_offset == 3


def test_reads_respect_max_bytes_but_always_return_one_batch_when_allowed():
    partition = memory_partition()
    for _ in range(5):
        append(partition, 3)
    one_batch = len(build_batch(3))
    assert len(partition.read(0, one_batch * 2 + 10, True)) == one_batch * 2
    assert len(partition.read(0, 10, True)) == one_batch
    assert partition.read(0, 10, False) == b""


def test_segments_roll_at_segment_bytes_and_reads_cross_them():
    partition = memory_partition(segment_bytes=str(len(build_batch(3)) * 2))
    for _ in range(6):
        append(partition, 3)
    assert len(partition.segments) == 3
    assert parse_batches(partition.read(6, 1 << 20, True))[0].base_offset == 6
    assert partition.bytes_after(0) >= len(build_batch(3)) * 6


def test_retention_by_size_deletes_whole_closed_segments_only():
    batch_size = len(build_batch(3))
    partition = memory_partition(segment_bytes=str(batch_size), retention_bytes=str(batch_size * 2))
    now = int(time.time() * 1000)
    for _ in range(5):
        append(partition, 3, timestamp=now)
    partition.enforce_retention(now)
    assert partition.log_start_offset == 9
    assert partition.next_offset == 15


def test_retention_by_time_uses_the_batch_max_timestamp():
    partition = memory_partition(segment_bytes="1", retention_ms="1000")
    now = int(time.time() * 1000)
    append(partition, 3, timestamp=now - 10_000)
    append(partition, 3, timestamp=now)
    append(partition, 3, timestamp=now)
    assert partition.enforce_retention(now) == 1
    assert partition.log_start_offset == 3


def test_offsets_for_timestamps_use_running_max_timestamps_then_the_records():
    partition = memory_partition()
    append(partition, 2, timestamp=100)
    append(partition, 2, timestamp=300)
    append(partition, 2, timestamp=200)
    # The batch is found by its running maximum; the answer is the first record reaching it.
    assert partition.offset_for_timestamp(150) == (2, 300)
    assert partition.offset_for_timestamp(50) == (0, 100)
    assert partition.offset_for_timestamp(301) == (3, 301)
    assert partition.offset_for_timestamp(1000) is None
    # KIP-734: the record with the greatest timestamp, not its batch's base offset.
    assert partition.max_timestamp_offset() == (3, 301)


def test_delete_records_moves_the_log_start_inside_a_segment_and_survives_a_restart(tmp_path):
    partition = PartitionLog("t", 0, tmp_path / "t-0", {})
    partition.open_empty()
    append(partition, 4, timestamp=100)
    append(partition, 4, timestamp=200)
    assert partition.delete_records_before(5) == 5
    assert partition.log_start_offset == 5
    assert partition.offset_for_timestamp(0) == (5, 201)
    partition.close()
    recovered = PartitionLog("t", 0, tmp_path / "t-0", {})
    recovered.recover()
    assert recovered.log_start_offset == 5
    recovered.close()


def test_idempotent_producer_duplicates_and_gaps_are_detected():
    partition = memory_partition()
    first = build_batch(3, producer_id=5, base_sequence=0)
    assert partition.check_producer(parse_batches(first)[0]) == (errors.NONE, None)
    partition.append(first, parse_batches(first))
    assert partition.check_producer(parse_batches(first)[0]) == (errors.NONE, 0)
    gap = build_batch(3, producer_id=5, base_sequence=7)
    assert partition.check_producer(parse_batches(gap)[0])[0] == errors.OUT_OF_ORDER_SEQUENCE_NUMBER
    following = build_batch(3, producer_id=5, base_sequence=3)
    assert partition.check_producer(parse_batches(following)[0]) == (errors.NONE, None)


def test_recovery_rebuilds_the_index_and_producer_state_and_cuts_a_torn_tail(tmp_path):
    directory = tmp_path / "t-0"
    partition = PartitionLog("t", 0, directory, {"segment.bytes": str(len(build_batch(3)) * 2)})
    partition.open_empty()
    for sequence in range(0, 15, 3):
        append(partition, 3, producer_id=9, base_sequence=sequence)
    partition.close()
    last_segment = sorted(directory.glob("*.log"))[-1]
    with open(last_segment, "ab") as handle:
        handle.write(os.urandom(30))

    recovered = PartitionLog("t", 0, directory, partition.configs)
    recovered.recover()
    assert recovered.next_offset == 15
    assert len(recovered.segments) == 3
    assert recovered.producers[9].last_sequence == 14
    assert parse_batches(recovered.read(12, 1 << 20, True))[0].base_offset == 12
    assert last_segment.stat().st_size == recovered.segments[-1].size
    recovered.close()
