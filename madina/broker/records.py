"""Record batch headers (magic v2), read and patched without touching the records inside.

The broker stores batches exactly as producers sent them. All it ever needs is the fixed
61-byte header: where the batch ends, how many offsets it spans, its timestamps and its
idempotent-producer fields. Parsing that with one ``struct.unpack_from`` per batch keeps
the produce path free of per-record Python work, and compressed batches need no special
case because their payload is never opened.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import crc32c

# baseOffset, batchLength, partitionLeaderEpoch, magic, crc, attributes, lastOffsetDelta,
# baseTimestamp, maxTimestamp, producerId, producerEpoch, baseSequence, recordCount
BATCH_HEADER = struct.Struct(">qiibIhiqqqhii")
BATCH_HEADER_SIZE = BATCH_HEADER.size  # 61
# batchLength counts the bytes after itself; the offset and the length field come first.
LOG_OVERHEAD = 12
# The CRC covers everything from the attributes field to the end of the batch, which is why
# baseOffset and partitionLeaderEpoch can be patched without recomputing it.
CRC_START = 21
MAGIC_OFFSET = 16
_BASE_OFFSET = struct.Struct(">q")
_LEADER_EPOCH = struct.Struct(">i")

TRANSACTIONAL_FLAG = 0x10
CONTROL_FLAG = 0x20


class CorruptBatchError(ValueError):
    """Bytes that do not form a well-formed sequence of magic v2 record batches."""


class BatchHeader(NamedTuple):
    """The fixed header of one record batch, plus where it sits in its buffer."""

    position: int
    size: int  # whole batch, header included
    base_offset: int
    batch_length: int
    leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def offset_count(self) -> int:
        return self.last_offset_delta + 1

    @property
    def last_sequence(self) -> int:
        # Sequences wrap at Int32.MAX back to 0, like the Java client's.
        return (self.base_sequence + self.last_offset_delta) % 0x80000000


def read_header(buffer, position: int = 0, limit: int | None = None) -> BatchHeader:
    """Parse the batch header at ``position``; raise CorruptBatchError if it cannot be a batch."""
    end = len(buffer) if limit is None else limit
    if end - position < BATCH_HEADER_SIZE:
        raise CorruptBatchError(f"{end - position} bytes left, a batch header needs {BATCH_HEADER_SIZE}")
    fields = BATCH_HEADER.unpack_from(buffer, position)
    batch_length = fields[1]
    magic = fields[3]
    if magic != 2:
        raise CorruptBatchError(f"unsupported record batch magic {magic} (only v2 is stored)")
    size = batch_length + LOG_OVERHEAD
    if size < BATCH_HEADER_SIZE:
        raise CorruptBatchError(f"batch length {batch_length} is shorter than a header")
    if position + size > end:
        raise CorruptBatchError(f"batch of {size} bytes runs past the end of its buffer")
    if fields[6] < 0:
        raise CorruptBatchError(f"negative lastOffsetDelta {fields[6]}")
    return BatchHeader(position, size, *fields)


def parse_batches(buffer) -> list[BatchHeader]:
    """All batch headers in a produce request's records field, which must hold whole batches."""
    headers = []
    position = 0
    end = len(buffer)
    while position < end:
        header = read_header(buffer, position, end)
        headers.append(header)
        position += header.size
    if not headers:
        raise CorruptBatchError("no record batch in the records field")
    return headers


def crc_matches(buffer, header: BatchHeader) -> bool:
    start = header.position + CRC_START
    return crc32c.crc32c(memoryview(buffer)[start : header.position + header.size]) == header.crc


def patch_base_offset(buffer: bytearray, position: int, base_offset: int) -> None:
    _BASE_OFFSET.pack_into(buffer, position, base_offset)


def patch_leader_epoch(buffer: bytearray, position: int, leader_epoch: int) -> None:
    _LEADER_EPOCH.pack_into(buffer, position + 12, leader_epoch)


def scan_valid_prefix(
    buffer, expected_base_offset: int | None = None, check_crc: bool = True, allow_gaps: bool = False
):
    """Walk stored batches from the start; stop at the first torn or corrupt one.

    Returns ``(headers, valid_end, problem)`` where ``problem`` is None when the whole
    buffer is good. Used at start-up to find the tail that a crash left half-written.
    Offsets must continue where the previous batch ended, so stray bytes that happen to
    look like a header are still caught; with ``allow_gaps`` (segments rewritten by the
    compaction cleaner) they only have to increase.
    """
    headers: list[BatchHeader] = []
    position = 0
    end = len(buffer)
    next_offset = expected_base_offset
    while position < end:
        try:
            header = read_header(buffer, position, end)
        except CorruptBatchError as error:
            return headers, position, str(error)
        if next_offset is not None and (
            header.base_offset < next_offset if allow_gaps else header.base_offset != next_offset
        ):
            return headers, position, f"batch base offset {header.base_offset}, expected {next_offset}"
        if check_crc and not crc_matches(buffer, header):
            return headers, position, f"CRC mismatch in batch at offset {header.base_offset}"
        headers.append(header)
        next_offset = header.base_offset + header.offset_count
        position += header.size
    return headers, position, None
