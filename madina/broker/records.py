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


# Control records (transaction markers): key is (version int16, type int16), type 0 abort, 1 commit;
# value is (version int16, coordinator epoch int32).
CONTROL_ABORT = 0
CONTROL_COMMIT = 1
_CONTROL_KEY = struct.Struct(">hh")
_CONTROL_VALUE = struct.Struct(">hi")


def _zigzag(value: int) -> bytes:
    encoded = (value << 1) ^ (value >> 63)
    out = bytearray()
    while encoded > 0x7F:
        out.append((encoded & 0x7F) | 0x80)
        encoded >>= 7
    out.append(encoded)
    return bytes(out)


def _read_varint(buffer, position: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        byte = buffer[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (value >> 1) ^ -(value & 1), position
        shift += 7
        if shift > 63:
            raise CorruptBatchError("varint too long in a control record")


def build_control_batch(
    producer_id: int, producer_epoch: int, commit: bool, coordinator_epoch: int, timestamp_ms: int
) -> bytes:
    """One transaction marker as a whole record batch (offset 0; the log assigns the real one)."""
    key = _CONTROL_KEY.pack(0, CONTROL_COMMIT if commit else CONTROL_ABORT)
    value = _CONTROL_VALUE.pack(0, coordinator_epoch)
    body = b"".join(
        (b"\x00", _zigzag(0), _zigzag(0), _zigzag(len(key)), key, _zigzag(len(value)), value, _zigzag(0))
    )
    records = _zigzag(len(body)) + body
    batch_length = BATCH_HEADER_SIZE - LOG_OVERHEAD + len(records)
    header = bytearray(
        BATCH_HEADER.pack(
            0,
            batch_length,
            0,
            2,
            0,
            TRANSACTIONAL_FLAG | CONTROL_FLAG,
            0,
            timestamp_ms,
            timestamp_ms,
            producer_id,
            producer_epoch,
            -1,
            1,
        )
    )
    batch = header + records
    struct.pack_into(">I", batch, 17, crc32c.crc32c(memoryview(batch)[CRC_START:]))
    return bytes(batch)


def control_type(buffer, header: BatchHeader) -> int:
    """The marker type (CONTROL_ABORT or CONTROL_COMMIT) of a control batch's first record."""
    position = header.position + BATCH_HEADER_SIZE
    _length, position = _read_varint(buffer, position)
    position += 1  # record attributes
    _timestamp_delta, position = _read_varint(buffer, position)
    _offset_delta, position = _read_varint(buffer, position)
    key_length, position = _read_varint(buffer, position)
    if key_length < 4:
        raise CorruptBatchError(f"control record key of {key_length} bytes")
    return _CONTROL_KEY.unpack_from(buffer, position)[1]


def record_timestamps(buffer, header: BatchHeader) -> list[tuple[int, int]]:
    """``(offset, timestamp)`` of each record of an uncompressed batch, for timestamp lookups."""
    position = header.position + BATCH_HEADER_SIZE
    end = header.position + header.size
    found = []
    for _ in range(header.record_count):
        if position >= end:
            break
        length, body = _read_varint(buffer, position)
        next_record = body + length
        position = body + 1  # record attributes
        timestamp_delta, position = _read_varint(buffer, position)
        offset_delta, position = _read_varint(buffer, position)
        found.append((header.base_offset + offset_delta, header.base_timestamp + timestamp_delta))
        position = next_record
    return found
