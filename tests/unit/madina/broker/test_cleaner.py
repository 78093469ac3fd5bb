"""Log compaction: latest record per key in closed segments, offsets kept, tombstones expired,
producer state kept, segments merged, and crash-safe swaps of cleaned segments on disk."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from madina.broker import cleaner
from madina.broker.partition import CLEANED_MARKER_FILE, PartitionLog
from madina.broker.records import parse_batches, patch_base_offset

NOW = int(time.time() * 1000)
DAY_MS = 86_400_000


def keyed_batch(
    records: list[tuple[bytes | None, bytes | None]],
    timestamp: int = NOW,
    producer_id: int = -1,
    base_sequence: int = -1,
    compression: int = 0,
    headers: list | None = None,
) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=compression,
        is_transactional=False,
        producer_id=producer_id,
        producer_epoch=0 if producer_id >= 0 else -1,
        base_sequence=base_sequence,
        batch_size=1 << 20,
    )
    for number, (key, value) in enumerate(records):
        builder.append(number, timestamp=timestamp + number, key=key, value=value, headers=headers or [])
    batch = bytearray(builder.build())
    patch_base_offset(batch, 0, 0)
    return bytes(batch)


def append(partition: PartitionLog, records, **options) -> int:
    data = keyed_batch(records, **options)
    return partition.append(data, parse_batches(data))


def compacted(directory: Path | None = None, **configs: str) -> PartitionLog:
    settings = {"cleanup.policy": "compact", "segment.bytes": "400", **configs}
    partition = PartitionLog("t", 0, directory, {key.replace("_", "."): value for key, value in settings.items()})
    partition.open_empty()
    return partition


def all_records(partition: PartitionLog) -> list[tuple[int, bytes | None, bytes | None, int, list]]:
    """What a consumer from the beginning sees: (offset, key, value, timestamp, headers)."""
    seen = []
    offset = partition.log_start_offset
    while offset < partition.next_offset:
        data = partition.read(offset, 1 << 20, True)
        assert data, f"no data at offset {offset}"
        for header in parse_batches(data):
            batch = DefaultRecordBatch(data[header.position : header.position + header.size])
            for record in batch:
                if record.offset >= offset:
                    seen.append((record.offset, record.key, record.value, record.timestamp, record.headers))
            offset = max(offset, header.base_offset + header.offset_count)
    return seen


def fill(partition: PartitionLog, updates: int = 60, keys: int = 4) -> dict[bytes, tuple[int, bytes]]:
    """Updates of a few keys, two per batch, then a lone batch so the last segment rolls."""
    latest: dict[bytes, tuple[int, bytes]] = {}
    for number in range(0, updates, 2):
        records = [(f"k{(number + i) % keys}".encode(), f"v{number + i}".encode()) for i in range(2)]
        base = append(partition, records)
        for i, (key, value) in enumerate(records):
            latest[key] = (base + i, value)
    return latest


def roll(partition: PartitionLog) -> None:
    """Force the active segment closed by appending one batch bigger than segment.bytes allows."""
    size = int(partition.configs["segment.bytes"])
    append(partition, [(b"roll", b"x" * size)])


def test_cleaning_keeps_the_latest_record_per_key_with_original_offsets():
    partition = compacted()
    latest = fill(partition)
    roll(partition)
    before_end = partition.next_offset
    assert len(partition.segments) > 3
    result = partition.clean_now()
    assert result is not None and result.records_removed > 0
    seen = all_records(partition)
    closed_end = partition.segments[-1].base_offset
    expected = sorted((offset, key, value) for key, (offset, value) in latest.items() if offset < closed_end)
    expected += [(offset, key, value) for offset, key, value, _, _ in seen if offset >= closed_end]
    assert [(offset, key, value) for offset, key, value, _, _ in seen] == expected
    assert partition.next_offset == before_end
    assert partition.log_start_offset == 0
    # Merged: many small cleaned segments became few.
    assert len(partition.segments) <= 3


def test_active_segment_is_never_cleaned_and_a_second_clean_is_a_no_op():
    partition = compacted(segment_bytes="100000")
    fill(partition, 20)
    assert partition.clean_now() is None  # one segment only: it is the active one
    roll(partition)
    first = partition.clean_now()
    assert first is not None and first.records_removed == 16
    second = partition.clean_now()
    assert second is not None and second.records_removed == 0 and not second.groups


def test_dirty_ratio_decides_when_the_periodic_cleaner_runs():
    partition = compacted(min_cleanable_dirty_ratio="0.5")
    fill(partition)
    roll(partition)
    assert partition.plan_cleaning(NOW) is not None
    partition.clean_now(force=False)
    assert partition.plan_cleaning(NOW) is None  # everything closed is clean now
    assert partition.plan_cleaning(NOW, force=True) is not None


def test_tombstones_are_dropped_only_after_delete_retention():
    partition = compacted(delete_retention_ms=str(DAY_MS))
    append(partition, [(b"old", b"1"), (b"recent", b"1"), (b"kept", b"1")], timestamp=NOW - 3 * DAY_MS)
    append(partition, [(b"old", None)], timestamp=NOW - 2 * DAY_MS)
    append(partition, [(b"recent", None)], timestamp=NOW - 1000)
    roll(partition)
    partition.clean_now()
    remaining = [(key, value) for _, key, value, _, _ in all_records(partition) if key != b"roll"]
    assert remaining == [(b"kept", b"1"), (b"recent", None)]
    partition.clean_now(now_ms=NOW + 2 * DAY_MS)
    remaining = [(key, value) for _, key, value, _, _ in all_records(partition) if key != b"roll"]
    assert remaining == [(b"kept", b"1")]


def test_headers_timestamps_keyless_records_and_compressed_batches_survive():
    partition = compacted(segment_bytes="100000")
    headers = [("trace", b"abc"), ("empty", None)]
    first_records = [(b"a", b"1" * 100), (b"b", b"1" * 100), (None, b"no key" * 20)]
    append(partition, first_records, headers=headers, timestamp=5000, compression=1)
    big = b"x" * 300
    append(partition, [(b"c", big), (b"d", big)], compression=1)  # untouched: copied as is
    append(partition, [(b"a", b"2")], timestamp=9000)
    roll(partition)
    partition.clean_now()
    seen = [(o, k, v, t, h) for o, k, v, t, h in all_records(partition) if k != b"roll"]
    assert seen == [
        (1, b"b", b"1" * 100, 5001, headers),
        (2, None, b"no key" * 20, 5002, headers),
        (3, b"c", big, NOW, []),
        (4, b"d", big, NOW + 1, []),
        (5, b"a", b"2", 9000, []),
    ]
    stored = partition.read(0, 1 << 20, True)
    first, untouched = parse_batches(stored)[:2]
    assert parse_batches(keyed_batch(first_records, compression=1))[0].attributes & 0x07 == 1
    assert (first.base_offset, first.offset_count, first.attributes & 0x07) == (0, 3, 0)  # re-encoded plain
    assert untouched.attributes & 0x07 == 1  # still gzip


def test_a_fetch_inside_a_gap_starts_at_the_next_batch():
    partition = compacted(segment_bytes="100000")
    for number in range(10):
        append(partition, [(b"same" if number < 9 else b"other", str(number).encode())])
    append(partition, [(b"same", b"last")])
    roll(partition)
    partition.clean_now()
    data = partition.read(3, 1 << 20, True)
    assert parse_batches(data)[0].base_offset == 9
    assert partition.bytes_after(3) > 0


def test_idempotent_producer_state_survives_cleaning_and_recovery(tmp_path: Path):
    directory = tmp_path / "t-0"
    partition = compacted(directory)
    for sequence in range(0, 20, 2):
        append(partition, [(b"k", b"a"), (b"k", b"b")], producer_id=3, base_sequence=sequence)
    # Another producer supersedes every record producer 3 wrote.
    append(partition, [(b"k", b"final")], producer_id=4, base_sequence=0)
    roll(partition)
    partition.clean_now()
    partition.close()
    recovered = PartitionLog("t", 0, directory, partition.configs)
    recovered.recover()
    assert recovered.producers[3].last_sequence == 19
    assert recovered.producers[3].epoch == 0
    assert [(key, value) for _, key, value, _, _ in all_records(recovered)][:1] == [(b"k", b"final")]
    recovered.close()


def test_durable_cleaning_survives_restart_with_the_same_view(tmp_path: Path):
    directory = tmp_path / "t-0"
    partition = compacted(directory)
    fill(partition)
    roll(partition)
    partition.clean_now()
    view = all_records(partition)
    end = partition.next_offset
    files = sorted(path.name for path in directory.iterdir())
    partition.close()
    assert all(name.endswith(".log") or name == CLEANED_MARKER_FILE for name in files)  # no temporary files left
    recovered = PartitionLog("t", 0, directory, partition.configs)
    recovered.recover()
    assert all_records(recovered) == view
    assert (recovered.log_start_offset, recovered.next_offset) == (0, end)
    assert append(recovered, [(b"k0", b"after")]) == end
    recovered.close()


def test_a_crash_before_the_swap_commit_keeps_the_old_segments(tmp_path: Path):
    directory = tmp_path / "t-0"
    partition = compacted(directory)
    fill(partition)
    roll(partition)
    view = all_records(partition)
    partition.close()
    (directory / f"{0:020d}{cleaner.CLEANED_SUFFIX}").write_bytes(b"half written cleaned segment")
    recovered = PartitionLog("t", 0, directory, partition.configs)
    recovered.recover()
    assert all_records(recovered) == view
    assert not list(directory.glob("*" + cleaner.CLEANED_SUFFIX))
    recovered.close()


def test_a_crash_after_the_swap_commit_completes_the_swap(tmp_path: Path, monkeypatch):
    directory = tmp_path / "t-0"
    partition = compacted(directory)
    fill(partition)
    roll(partition)
    backup = tmp_path / "backup"
    shutil.copytree(directory, backup)

    # Clean a copy to learn what the cleaned log looks like, then replay a crash that
    # happened right after the .swap rename: old segments all still there.
    def crash_after_commit(directory: Path, swap: Path) -> None:
        raise SystemExit("simulated kill -9")

    monkeypatch.setattr(cleaner, "_finish_swap", crash_after_commit)
    with pytest.raises(SystemExit):
        partition.clean_now()
    monkeypatch.undo()
    partition.close()
    assert len(list(directory.glob("*" + cleaner.SWAP_SUFFIX))) == 1
    assert sorted(p.name for p in directory.glob("*.log")) == sorted(p.name for p in backup.glob("*.log"))

    recovered = PartitionLog("t", 0, directory, partition.configs)
    recovered.recover()
    reference = PartitionLog("t", 0, backup, partition.configs)
    reference.recover()
    reference.clean_now()
    assert all_records(recovered) == all_records(reference)
    assert not list(directory.glob("*" + cleaner.SWAP_SUFFIX))
    assert recovered.next_offset == reference.next_offset
    recovered.close()
    reference.close()


def test_segment_ms_rolls_the_active_segment():
    partition = compacted(segment_bytes="100000", segment_ms="50")
    append(partition, [(b"a", b"1")])
    append(partition, [(b"a", b"2")])
    assert len(partition.segments) == 1
    partition.segments[-1].roll_timestamp -= 100
    append(partition, [(b"a", b"3")])
    assert len(partition.segments) == 2


def test_compact_defaults_apply_only_to_compacted_topics_without_their_own():
    defaults = {"segment.bytes": "1234", "segment.ms": "5678"}
    assert PartitionLog("t", 0, None, {"cleanup.policy": "compact"}, defaults).segment_limits() == (1234, 5678)
    assert PartitionLog("t", 0, None, {}, defaults).segment_limits() == (1073741824, 604800000)
    own = {"cleanup.policy": "compact,delete", "segment.bytes": "99"}
    assert PartitionLog("t", 0, None, own, defaults).segment_limits() == (99, 5678)
