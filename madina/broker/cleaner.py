"""Log compaction: keep only the latest record per key in the closed segments of compacted topics.

This is the only place where the broker opens record batches. It follows Kafka's cleaner:

- only closed segments are cleaned, never the active one, so the produce path is untouched;
- an offset map (key -> offset of its latest record) is built from the dirty part of the
  log, everything since the previous cleaning, because the clean part already holds
  each key at most once;
- every closed segment is then rewritten keeping a record when no later record has its
  key, dropping tombstones (null values) whose timestamp is older than
  ``delete.retention.ms``. Offsets are preserved, so the cleaned log has gaps, which
  consumers skip. A batch whose records all survive is copied byte for byte (compressed
  or not); a batch that loses some is re-encoded uncompressed with its original base
  offset and ``lastOffsetDelta``, so its offset span and producer sequence range stay
  as they were. A batch that loses all of its records is dropped, except when it is
  one of the last batches of an idempotent producer: it is kept as an empty batch so
  the producer's sequence state is rebuilt correctly after a restart, as Kafka does;
- transactions: cleaning stops before the segment holding the first open transaction
  (the last stable offset), records of aborted transactions are removed and never shadow
  a committed record of their key, and transaction markers are kept;
- consecutive cleaned segments are merged while their total stays under
  ``segment.bytes``, so a long-lived compacted topic does not pile up small files. The
  merged segment keeps the first one's base offset, so the log start offset never moves.

Cleaning a partition runs in a worker thread (``prepare``) and only the final swap of
``Segment`` objects happens on the event loop (``PartitionLog.swap_cleaned`` in madina.broker.partition).

Crash safety on disk: the cleaned segment is written to ``<base>.cleaned`` and fsynced,
then renamed to ``<base>-<end>.swap`` (the commit point; ``end`` is the base offset of
the segment after the replaced ones), then the replaced segment files are removed and
the swap file renamed to ``<base>.log``. At start-up (``recover_swaps``) ``.cleaned``
files are deleted and a ``.swap`` file finishes its swap, so a crash at any point leaves
either the old segments or the cleaned one, never a mix and never a loss.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import mmap
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import crc32c
from kafka.record.default_records import DefaultRecordBatch
from kafka.record.util import encode_varint

from madina.broker.records import (
    BATCH_HEADER,
    BATCH_HEADER_SIZE,
    CONTROL_FLAG,
    CRC_START,
    LOG_OVERHEAD,
    TRANSACTIONAL_FLAG,
    BatchHeader,
    read_header,
)
from madina.broker.segment import SEGMENT_SUFFIX, Segment

logger = logging.getLogger("madina.broker")

CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"
COMPRESSION_MASK = 0x07
LOG_APPEND_TIME_FLAG = 0x08
_CRC = struct.Struct(">I")
# Keys longer than this are remembered by a 16-byte digest, which bounds the map's memory.
MAX_PLAIN_KEY = 32


class CleanablePartition(Protocol):
    """What cleaning needs of a partition log (madina.broker.partition.PartitionLog is one)."""

    @property
    def directory(self) -> Path | None: ...

    @property
    def deleted(self) -> bool: ...

    def config_int(self, key: str) -> int: ...

    def segment_limits(self) -> tuple[int, int]: ...


def map_key(key: bytes) -> bytes:
    return key if len(key) <= MAX_PLAIN_KEY else hashlib.blake2b(key, digest_size=16).digest()


@dataclass(slots=True)
class Record:
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list


def iterate_batches(data) -> Iterator[BatchHeader]:
    position = 0
    end = len(data)
    while position < end:
        header = read_header(data, position, end)
        yield header
        position += header.size


def decode_records(data, header: BatchHeader) -> list[Record]:
    """The records of one stored batch, decompressed."""
    batch = DefaultRecordBatch(memoryview(data)[header.position : header.position + header.size])
    return [
        Record(record.offset, record.timestamp, record.key, record.value, record.headers) for record in batch
    ]


def encode_batch(header: BatchHeader, records: list[Record]) -> bytes:
    """Re-encode ``records`` (a subset of ``header``'s batch) uncompressed.

    Base offset, lastOffsetDelta, producer fields and the timestamp type stay those of the
    original batch; an empty list gives an empty batch that only keeps the offset span.
    """
    attributes = header.attributes & ~COMPRESSION_MASK
    log_append_time = bool(attributes & LOG_APPEND_TIME_FLAG)
    if records and not log_append_time:
        base_timestamp = records[0].timestamp
        max_timestamp = max(record.timestamp for record in records)
    else:
        base_timestamp, max_timestamp = header.base_timestamp, header.max_timestamp
    body = bytearray()
    for record in records:
        encoded = bytearray(b"\x00")  # record attributes
        write = encoded.append
        encode_varint(0 if log_append_time else record.timestamp - base_timestamp, write)
        encode_varint(record.offset - header.base_offset, write)
        for blob in (record.key, record.value):
            if blob is None:
                encode_varint(-1, write)
            else:
                encode_varint(len(blob), write)
                encoded += blob
        encode_varint(len(record.headers), write)
        for header_key, header_value in record.headers:
            key_bytes = header_key.encode() if isinstance(header_key, str) else bytes(header_key)
            encode_varint(len(key_bytes), write)
            encoded += key_bytes
            if header_value is None:
                encode_varint(-1, write)
            else:
                encode_varint(len(header_value), write)
                encoded += header_value
        encode_varint(len(encoded), body.append)
        body += encoded
    batch = bytearray(BATCH_HEADER_SIZE)
    BATCH_HEADER.pack_into(
        batch,
        0,
        header.base_offset,
        BATCH_HEADER_SIZE + len(body) - LOG_OVERHEAD,
        0,
        2,
        0,
        attributes,
        header.last_offset_delta,
        base_timestamp,
        max_timestamp,
        header.producer_id,
        header.producer_epoch,
        header.base_sequence,
        len(records),
    )
    batch += body
    _CRC.pack_into(batch, 17, crc32c.crc32c(memoryview(batch)[CRC_START:]))
    return bytes(batch)


@dataclass
class CleanedGroup:
    """The result of cleaning consecutive closed segments: one segment to swap in."""

    replaced: list[Segment]
    end_offset: int  # base offset of the segment after the replaced ones
    segment: Segment
    bytes_before: int
    bytes_after: int


@dataclass
class CleanResult:
    partition: CleanablePartition
    groups: list[CleanedGroup] = field(default_factory=list)
    clean_until: int = 0
    records_removed: int = 0


@contextlib.contextmanager
def segment_bytes(segment: Segment) -> Iterator:
    """All of a closed segment's bytes (a closed segment is never appended to), mapped not copied."""
    if segment.buffer is not None:
        yield memoryview(segment.buffer)
        return
    assert segment.path is not None
    # A fresh descriptor: the segment's own may be closed by a topic deletion meanwhile.
    with open(segment.path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            yield b""
            return
        with mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_READ) as mapped:
            yield mapped


# producer id -> (first offset, marker offset) of each of its aborted transactions
AbortedRanges = dict[int, list[tuple[int, int]]]


def _is_aborted(header: BatchHeader, aborted: AbortedRanges) -> bool:
    """Whether a transactional batch belongs to a transaction that was aborted."""
    if not header.attributes & TRANSACTIONAL_FLAG or header.attributes & CONTROL_FLAG:
        return False
    return any(first <= header.base_offset < last for first, last in aborted.get(header.producer_id, ()))


def build_offset_map(segments: list[Segment], aborted: AbortedRanges | None = None) -> dict[bytes, int]:
    offsets: dict[bytes, int] = {}
    for segment in segments:
        with segment_bytes(segment) as data:
            for header in iterate_batches(data):
                if header.attributes & CONTROL_FLAG or header.record_count == 0:
                    continue
                if aborted and _is_aborted(header, aborted):
                    continue  # an aborted record never shadows a committed one
                for record in decode_records(data, header):
                    if record.key is not None:
                        offsets[map_key(record.key)] = record.offset
    return offsets


def prepare(
    partition: CleanablePartition,
    closed: list[Segment],
    end_offset: int,
    dirty_from: int,
    now_ms: int,
    keep_batches: set[int],
    aborted: AbortedRanges | None = None,
) -> CleanResult:
    """Clean ``closed`` (the partition's closed segments); runs in a worker thread.

    Files are committed on disk here (see the module docstring); the in-memory swap is
    left to the event loop. ``keep_batches`` are base offsets of batches kept even when
    emptied: the producers' most recent batches. ``aborted`` maps producer ids to the
    ``(first offset, marker offset)`` of their aborted transactions, whose records go.
    """
    result = CleanResult(partition, clean_until=end_offset)
    dirty = [segment for segment in closed if segment.next_offset > dirty_from]
    aborted = aborted or {}
    offsets = build_offset_map(dirty, aborted)
    delete_retention_ms = partition.config_int("delete.retention.ms")
    max_bytes = partition.segment_limits()[0]
    group: list[Segment] = []
    chunks: list[bytes] = []
    output_size = 0
    changed = False
    removed = 0

    def flush(group_end: int) -> None:
        if group and (changed or len(group) > 1):
            new_segment = _write_segment(partition, group[0].base_offset, group_end, chunks)
            result.groups.append(
                CleanedGroup(list(group), group_end, new_segment, sum(s.size for s in group), new_segment.size)
            )
            result.records_removed += removed

    for segment in closed:
        # Merge while the cleaned output so far plus this whole segment fits in segment.bytes.
        if group and output_size + segment.size > max_bytes:
            flush(segment.base_offset)
            group, chunks, output_size, changed, removed = [], [], 0, False, 0
        group.append(segment)
        with segment_bytes(segment) as data:
            for header in iterate_batches(data):
                raw = bytes(data[header.position : header.position + header.size])
                if header.attributes & CONTROL_FLAG or header.record_count == 0:
                    chunks.append(raw)
                    output_size += len(raw)
                    continue
                records = decode_records(data, header)
                if aborted and _is_aborted(header, aborted):
                    kept = []
                else:
                    kept = [
                        record
                        for record in records
                        if record.key is None
                        or (
                            offsets.get(map_key(record.key), -1) <= record.offset
                            and not (record.value is None and record.timestamp + delete_retention_ms < now_ms)
                        )
                    ]
                if len(kept) == len(records):
                    chunks.append(raw)
                    output_size += len(raw)
                    continue
                changed = True
                removed += len(records) - len(kept)
                if kept or header.base_offset in keep_batches:
                    encoded = encode_batch(header, kept)
                    chunks.append(encoded)
                    output_size += len(encoded)
    flush(end_offset)
    return result


def _write_segment(partition: CleanablePartition, base: int, end: int, chunks: list[bytes]) -> Segment:
    directory = partition.directory
    if directory is None:
        segment = Segment(base, None)
    else:
        cleaned = directory / f"{base:020d}{CLEANED_SUFFIX}"
        with open(cleaned, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        if partition.deleted:
            cleaned.unlink(missing_ok=True)
            raise RuntimeError("partition deleted while it was being cleaned")
        swap = directory / f"{base:020d}-{end:020d}{SWAP_SUFFIX}"
        os.rename(cleaned, swap)
        _fsync_directory(directory)
        _finish_swap(directory, swap)
        segment = Segment(base, directory / f"{base:020d}{SEGMENT_SUFFIX}")
        segment.size = 0  # indexed below from the bytes just written
    position = 0
    for chunk in chunks:
        header = read_header(chunk)
        segment.index_batch(header, position, header.base_offset)
        position += len(chunk)
    if segment.buffer is not None:
        segment.buffer += b"".join(chunks)
    segment.size = position
    segment.next_offset = max(segment.next_offset, base)
    return segment


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _finish_swap(directory: Path, swap: Path) -> None:
    """Replace the segments a committed swap file covers with it (also used at recovery)."""
    base_text, end_text = swap.name[: -len(SWAP_SUFFIX)].split("-")
    base, end = int(base_text), int(end_text)
    for path in directory.glob("*" + SEGMENT_SUFFIX):
        if base < int(path.stem) < end:
            path.unlink(missing_ok=True)
    os.replace(swap, directory / f"{base:020d}{SEGMENT_SUFFIX}")
    _fsync_directory(directory)


def recover_swaps(directory: Path) -> None:
    """At start-up: drop unfinished cleaned files, complete committed swaps."""
    for leftover in directory.glob("*" + CLEANED_SUFFIX):
        logger.warning("removing unfinished cleaned segment %s", leftover)
        leftover.unlink(missing_ok=True)
    for swap in sorted(directory.glob("*" + SWAP_SUFFIX)):
        logger.warning("completing the interrupted swap of cleaned segment %s", swap)
        _finish_swap(directory, swap)
