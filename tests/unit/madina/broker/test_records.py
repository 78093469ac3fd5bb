"""Record batch headers: parsed, patched and scanned without touching the records."""

from __future__ import annotations

import pytest
from kafka.record.default_records import DefaultRecordBatchBuilder

from madina.broker.records import (
    BATCH_HEADER_SIZE,
    CorruptBatchError,
    crc_matches,
    parse_batches,
    patch_base_offset,
    read_header,
    scan_valid_prefix,
)


def build_batch(
    count: int = 3,
    base_offset: int = 0,
    producer_id: int = -1,
    base_sequence: int = -1,
    timestamp: int = 1_000,
) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=False,
        producer_id=producer_id,
        producer_epoch=0 if producer_id >= 0 else -1,
        base_sequence=base_sequence,
        batch_size=1 << 20,
    )
    for index in range(count):
        builder.append(index, timestamp=timestamp + index, key=None, value=f"v{index}".encode(), headers=[])
    batch = bytearray(builder.build())
    patch_base_offset(batch, 0, base_offset)
    return bytes(batch)


def test_header_fields_come_from_the_fixed_61_bytes():
    batch = build_batch(count=5, producer_id=7, base_sequence=10, timestamp=5_000)
    header = read_header(batch)
    assert (header.size, header.offset_count, header.record_count) == (len(batch), 5, 5)
    assert (header.base_timestamp, header.max_timestamp) == (5_000, 5_004)
    assert (header.producer_id, header.base_sequence, header.last_sequence) == (7, 10, 14)
    assert header.size > BATCH_HEADER_SIZE


def test_patching_the_base_offset_keeps_the_crc_valid():
    batch = bytearray(build_batch())
    patch_base_offset(batch, 0, 123_456)
    header = read_header(batch)
    assert header.base_offset == 123_456
    assert crc_matches(batch, header)


def test_a_flipped_record_byte_breaks_the_crc():
    batch = bytearray(build_batch())
    batch[-1] ^= 0xFF
    assert not crc_matches(batch, read_header(batch))


def test_several_batches_in_one_records_field_are_all_found():
    records = build_batch(2) + build_batch(4)
    headers = parse_batches(records)
    assert [header.offset_count for header in headers] == [2, 4]
    assert headers[1].position == headers[0].size


@pytest.mark.parametrize("damage", ["truncated", "magic", "short-length", "empty"])
def test_malformed_records_are_rejected(damage):
    batch = bytearray(build_batch())
    if damage == "truncated":
        batch = batch[:-5]
    elif damage == "magic":
        batch[16] = 1
    elif damage == "short-length":
        batch[8:12] = (10).to_bytes(4, "big")
    else:
        batch = bytearray()
    with pytest.raises(CorruptBatchError):
        parse_batches(batch)


def test_scan_stops_at_a_torn_tail_and_at_an_offset_gap():
    good = build_batch(3, base_offset=0) + build_batch(2, base_offset=3)
    headers, end, problem = scan_valid_prefix(good + good[:40], 0)
    assert (len(headers), end) == (2, len(good)) and "bytes left" in problem
    gap = good + build_batch(1, base_offset=99)
    headers, end, problem = scan_valid_prefix(gap, 0)
    assert (len(headers), end) == (2, len(good)) and "expected 5" in problem
    headers, end, problem = scan_valid_prefix(good, 0)
    assert problem is None and end == len(good)
