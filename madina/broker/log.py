"""Partition logs: append-only segments of stored record batches, their index, and recovery.

Layout with a data directory::

    DATA_DIR/topics.json                               topic names, ids, partition counts, configs
    DATA_DIR/<topic>-<partition>/<base offset:020>.log stored batches, byte for byte as produced

There is no index file: at start-up every segment is walked header by header (61 bytes per
batch, via mmap) and an in-memory index of batch base offsets, file positions and running
max timestamps is rebuilt. The last segment of each partition is also CRC-checked batch by
batch, so the half-written tail a ``kill -9`` or power loss leaves behind is found and cut
off before anything is served. Without a data directory the same structures live in
bytearrays and nothing touches the disk.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
import mmap
import os
import re
import shutil
import time
import uuid
from array import array
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from madina.broker import cleaner, errors
from madina.broker.records import (
    BATCH_HEADER_SIZE,
    CONTROL_ABORT,
    CONTROL_FLAG,
    TRANSACTIONAL_FLAG,
    BatchHeader,
    CorruptBatchError,
    control_type,
    patch_base_offset,
    patch_leader_epoch,
    read_header,
    scan_valid_prefix,
)

logger = logging.getLogger("madina.broker")

SEGMENT_SUFFIX = ".log"
# DeleteRecords' low watermark when it falls inside a segment (Kafka's log-start-offset checkpoint)
START_OFFSET_FILE = "log-start-offset"
TOPICS_FILE = "topics.json"
DELETED_SUFFIX = ".deleted"
LEGAL_TOPIC_NAME = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")

# Kafka's own defaults, reported by DescribeConfigs and used when a topic sets nothing.
DEFAULT_TOPIC_CONFIGS: dict[str, str] = {
    "cleanup.policy": "delete",
    "retention.ms": "604800000",
    "retention.bytes": "-1",
    "segment.bytes": "1073741824",
    "segment.ms": "604800000",
    "delete.retention.ms": "86400000",
    "min.cleanable.dirty.ratio": "0.5",
    "max.message.bytes": "1048588",
    "message.timestamp.type": "CreateTime",
    "min.insync.replicas": "1",
    "compression.type": "producer",
}
INTEGER_TOPIC_CONFIGS = {
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
    "delete.retention.ms",
    "max.message.bytes",
    "min.insync.replicas",
}
# Remembered per producer so a retried batch is recognised; Kafka keeps the same five.
PRODUCER_BATCHES_REMEMBERED = 5


def topic_name_problem(name: str | None) -> str | None:
    if not name or name in (".", "..") or not LEGAL_TOPIC_NAME.match(name):
        return f"illegal topic name {name!r}: use 1-249 of [a-zA-Z0-9._-]"
    return None


def validate_topic_configs(configs: dict[str, str | None]) -> str | None:
    for key, value in configs.items():
        if key in INTEGER_TOPIC_CONFIGS and value is not None:
            try:
                int(value)
            except ValueError:
                return f"config {key} must be an integer, got {value!r}"
        if key == "min.cleanable.dirty.ratio" and value is not None:
            try:
                ratio = float(value)
            except ValueError:
                ratio = -1.0
            if not 0 <= ratio <= 1:
                return f"config {key} must be a number from 0 to 1, got {value!r}"
        policies = set((value or "").replace(" ", "").split(","))
        if key == "cleanup.policy" and value is not None and not policies <= {"delete", "compact"}:
            return f"cleanup.policy must be delete and/or compact, got {value!r}"
    return None


class Segment:
    """One file (or bytearray) of consecutive batches, with a per-batch index."""

    __slots__ = (
        "base_offset",
        "batch_ends",
        "batch_offsets",
        "batch_positions",
        "buffer",
        "fd",
        "max_timestamp",
        "next_offset",
        "path",
        "roll_timestamp",
        "running_max_timestamps",
        "size",
    )

    def __init__(self, base_offset: int, path: Path | None = None):
        self.base_offset = base_offset
        self.next_offset = base_offset
        self.path = path
        self.size = 0
        self.max_timestamp = -1
        self.batch_offsets = array("q")
        self.batch_positions = array("q")
        # Offset after each batch's last one: a compacted segment has gaps between batches.
        self.batch_ends = array("q")
        # Wall-clock ms that segment.ms counts from: the first append, or at recovery the
        # first batch's timestamp (as Kafka does); -1 while empty.
        self.roll_timestamp = -1
        # Running maximum, so that a bisect finds the first batch reaching a timestamp even
        # when producers send timestamps out of order.
        self.running_max_timestamps = array("q")
        self.buffer: bytearray | None = None
        self.fd = -1
        if path is None:
            self.buffer = bytearray()
        else:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            self.size = os.fstat(self.fd).st_size

    @property
    def batch_count(self) -> int:
        return len(self.batch_offsets)

    def index_batch(self, header: BatchHeader, position: int, base_offset: int) -> None:
        self.batch_offsets.append(base_offset)
        self.batch_positions.append(position)
        self.batch_ends.append(base_offset + header.offset_count)
        if header.max_timestamp > self.max_timestamp:
            self.max_timestamp = header.max_timestamp
        self.running_max_timestamps.append(self.max_timestamp)
        self.next_offset = base_offset + header.offset_count

    def write(self, chunks: list) -> None:
        """Append byte chunks in one go (one writev on disk, so no joined copy is needed)."""
        size = sum(len(chunk) for chunk in chunks)
        if self.buffer is not None:
            for chunk in chunks:
                self.buffer += chunk
        else:
            if len(chunks) > 512:
                # writev takes at most IOV_MAX (1024 on Linux) buffers.
                chunks = [b"".join(chunks)]
            written = os.writev(self.fd, chunks)
            if written < size:
                rest = memoryview(b"".join(chunks))[written:]
                while rest:
                    rest = rest[os.write(self.fd, rest) :]
        self.size += size

    def read(self, start: int, end: int) -> bytes:
        if self.buffer is not None:
            return bytes(self.buffer[start:end])
        return os.pread(self.fd, end - start, start)

    def locate(self, offset: int) -> int:
        """Index of the batch that holds ``offset`` (or the first one after it)."""
        number = max(bisect.bisect_right(self.batch_offsets, offset) - 1, 0)
        if self.batch_ends[number] <= offset and number + 1 < len(self.batch_ends):
            number += 1  # ``offset`` falls in a gap a compaction left
        return number

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def delete(self) -> None:
        self.close()
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


@dataclass
class ProducerState:
    """What a partition remembers about one idempotent producer."""

    epoch: int
    last_sequence: int
    # (first sequence, last sequence, base offset) of the most recent batches
    recent_batches: deque = field(default_factory=lambda: deque(maxlen=PRODUCER_BATCHES_REMEMBERED))


class PartitionLog:
    """The stored batches of one topic partition and the fetches waiting on it."""

    def __init__(
        self,
        topic: str,
        index: int,
        directory: Path | None,
        configs: dict[str, str],
        compact_defaults: dict[str, str] | None = None,
    ):
        self.topic = topic
        self.index = index
        self.directory = directory
        self.configs = configs
        # Broker-level segment.bytes / segment.ms for compacted topics that set neither.
        self.compact_defaults = compact_defaults or {}
        # Offsets below this were cleaned by the last compaction; the rest is dirty.
        self.clean_until = 0
        self.deleted = False
        self.segments: list[Segment] = []
        self.segment_bases: list[int] = []
        self.next_offset = 0
        # Raised by DeleteRecords: records below it are gone even if their segment is not.
        self.deleted_before = 0
        self.producers: dict[int, ProducerState] = {}
        # Open transactions: producer id -> offset of its first batch here. The lowest is the
        # last stable offset, below which read_committed consumers may read.
        self.open_transactions: dict[int, int] = {}
        # Aborted transactions (producer id, first offset, marker offset), in marker order:
        # what read_committed fetches list so consumers drop the aborted records.
        self.aborted_transactions: list[tuple[int, int, int]] = []
        # Fetches parked on this partition; only they are woken when it grows.
        self.waiters: set = set()

    # ---- set-up -------------------------------------------------------------------------
    def open_empty(self) -> None:
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
        self._add_segment(0)

    # ---- configuration ------------------------------------------------------------------
    @property
    def compacted(self) -> bool:
        return "compact" in self.configs.get("cleanup.policy", "delete")

    def config_int(self, key: str) -> int:
        value = self.configs.get(key)
        if value is None and self.compacted:
            value = self.compact_defaults.get(key)
        return int(value if value is not None else DEFAULT_TOPIC_CONFIGS[key])

    def segment_limits(self) -> tuple[int, int]:
        """``(segment.bytes, segment.ms)`` in effect."""
        return self.config_int("segment.bytes"), self.config_int("segment.ms")

    def recover(self) -> None:
        """Rebuild the index from the segment files, cutting off a torn or corrupt tail."""
        assert self.directory is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        cleaner.recover_swaps(self.directory)
        # Compaction leaves offset gaps inside and between closed segments.
        gaps_allowed = self.compacted
        paths = sorted(self.directory.glob("*" + SEGMENT_SUFFIX))
        expected: int | None = None
        for number, path in enumerate(paths):
            base_offset = int(path.stem)
            if expected is not None and (base_offset < expected if gaps_allowed else base_offset != expected):
                logger.warning(
                    "partition %s-%d: segment %s starts at %d, expected %d; dropping it and later ones",
                    self.topic,
                    self.index,
                    path.name,
                    base_offset,
                    expected,
                )
                self._drop_files(paths[number:])
                break
            is_last = number == len(paths) - 1
            segment = Segment(base_offset, path)
            segment.next_offset = base_offset
            problem, valid_end = self._index_existing(
                segment, verify_crc=is_last, allow_gaps=gaps_allowed and not is_last
            )
            self.segments.append(segment)
            self.segment_bases.append(base_offset)
            expected = segment.next_offset
            if problem is not None:
                logger.warning(
                    "partition %s-%d: truncating %s at byte %d of %d (%s)",
                    self.topic,
                    self.index,
                    path.name,
                    valid_end,
                    segment.size,
                    problem,
                )
                os.ftruncate(segment.fd, valid_end)
                os.fsync(segment.fd)
                segment.size = valid_end
                self._drop_files(paths[number + 1 :])
                break
        if not self.segments:
            self._add_segment(0)
        self.next_offset = self.segments[-1].next_offset
        start_file = self.directory / START_OFFSET_FILE
        if start_file.exists():
            with contextlib.suppress(ValueError):
                self.deleted_before = min(int(start_file.read_text().strip() or 0), self.next_offset)

    def _index_existing(
        self, segment: Segment, verify_crc: bool, allow_gaps: bool = False
    ) -> tuple[str | None, int]:
        if segment.size == 0:
            return None, 0
        with mmap.mmap(segment.fd, segment.size, access=mmap.ACCESS_READ) as mapped:
            headers, valid_end, problem = scan_valid_prefix(
                mapped, segment.base_offset, check_crc=verify_crc, allow_gaps=allow_gaps
            )
            if headers:
                segment.roll_timestamp = max(headers[0].max_timestamp, 0)
            for header in headers:
                segment.index_batch(header, header.position, header.base_offset)
                self._remember_producer(header, header.base_offset)
                if header.attributes & TRANSACTIONAL_FLAG:
                    self._track_transaction(mapped, header, header.base_offset)
        return problem, valid_end

    def _drop_files(self, paths: Iterable[Path]) -> None:
        for path in paths:
            logger.warning(
                "partition %s-%d: removing segment %s after a corrupt one", self.topic, self.index, path.name
            )
            path.unlink(missing_ok=True)

    def _add_segment(self, base_offset: int) -> Segment:
        path = None
        if self.directory is not None:
            path = self.directory / f"{base_offset:020d}{SEGMENT_SUFFIX}"
        segment = Segment(base_offset, path)
        self.segments.append(segment)
        self.segment_bases.append(base_offset)
        return segment

    # ---- produce ------------------------------------------------------------------------
    @property
    def log_start_offset(self) -> int:
        return max(self.segments[0].base_offset, self.deleted_before)

    def delete_records_before(self, offset: int) -> int:
        """DeleteRecords: move the log start up to ``offset`` (at most the end); return the new start.

        Whole segments below it are deleted; the new start is written down (fsynced) so a
        restart does not bring the records back.
        """
        offset = min(offset, self.next_offset)
        if offset <= self.log_start_offset:
            return self.log_start_offset
        self.deleted_before = offset
        while len(self.segments) > 1 and self.segments[0].next_offset <= offset:
            self.segments.pop(0).delete()
            self.segment_bases.pop(0)
        if self.aborted_transactions:
            self.aborted_transactions = [entry for entry in self.aborted_transactions if entry[2] >= offset]
        if self.directory is not None:
            temporary = self.directory / (START_OFFSET_FILE + ".tmp")
            with open(temporary, "w") as handle:
                handle.write(str(offset))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.directory / START_OFFSET_FILE)
        return self.log_start_offset

    def check_producer(self, header: BatchHeader) -> tuple[int, int | None]:
        """Idempotence check: ``(error code, base offset of the original if a duplicate)``."""
        if header.producer_id < 0 or header.base_sequence < 0:
            return errors.NONE, None
        state = self.producers.get(header.producer_id)
        if state is None:
            # Unknown producer (new, or its history was deleted by retention): accept.
            return errors.NONE, None
        if header.producer_epoch < state.epoch:
            return errors.INVALID_PRODUCER_EPOCH, None
        if header.producer_epoch > state.epoch:
            if header.base_sequence != 0:
                return errors.OUT_OF_ORDER_SEQUENCE_NUMBER, None
            return errors.NONE, None
        for first, last, base_offset in state.recent_batches:
            if first == header.base_sequence and last == header.last_sequence:
                return errors.NONE, base_offset
        if header.base_sequence != (state.last_sequence + 1) % 0x80000000:
            return errors.OUT_OF_ORDER_SEQUENCE_NUMBER, None
        return errors.NONE, None

    def _remember_producer(self, header: BatchHeader, base_offset: int) -> None:
        if header.producer_id < 0 or header.base_sequence < 0:
            return
        state = self.producers.get(header.producer_id)
        if state is None or header.producer_epoch != state.epoch:
            state = ProducerState(header.producer_epoch, header.last_sequence)
            self.producers[header.producer_id] = state
        state.last_sequence = header.last_sequence
        state.recent_batches.append((header.base_sequence, header.last_sequence, base_offset))

    def _track_transaction(self, buffer, header: BatchHeader, base_offset: int) -> None:
        """Open a producer's transaction here at its first batch; close it at its marker."""
        producer_id = header.producer_id
        if not header.attributes & CONTROL_FLAG:
            self.open_transactions.setdefault(producer_id, base_offset)
            return
        try:
            marker = control_type(buffer, header)
        except (CorruptBatchError, IndexError):
            logger.warning("partition %s-%d: unreadable control batch at %d", self.topic, self.index, base_offset)
            return
        first = self.open_transactions.pop(producer_id, None)
        if marker == CONTROL_ABORT and first is not None:
            self.aborted_transactions.append((producer_id, first, base_offset))
        # A marker carries the producer's current epoch: a bumped one (fencing, timeout) makes
        # the old epoch's late batches fail, and the new epoch starts its sequences at 0.
        state = self.producers.get(producer_id)
        if state is None or header.producer_epoch > state.epoch:
            self.producers[producer_id] = ProducerState(header.producer_epoch, -1)

    @property
    def last_stable_offset(self) -> int:
        if not self.open_transactions:
            return self.next_offset
        return min(self.open_transactions.values())

    def aborted_between(self, start: int, end: int) -> list[tuple[int, int]]:
        """``(producer id, first offset)`` of aborted transactions that overlap ``[start, end)``."""
        found = []
        for producer_id, first, last in reversed(self.aborted_transactions):
            if last < start:
                break
            if first < end:
                found.append((producer_id, first))
        found.reverse()
        return found

    def append(self, records: bytes, headers: list[BatchHeader]) -> int:
        """Assign offsets to already validated batches, store them, return the first offset.

        Only each batch's 61-byte header is copied and patched; the rest is written
        straight from the request buffer.
        """
        segment = self.segments[-1]
        segment_bytes, segment_ms = self.segment_limits()
        now_ms = int(time.time() * 1000)
        if segment.size > 0 and (
            segment.size + len(records) > segment_bytes or now_ms - segment.roll_timestamp >= segment_ms
        ):
            segment = self._add_segment(self.next_offset)
        if segment.roll_timestamp < 0:
            segment.roll_timestamp = now_ms
        first_offset = self.next_offset
        position = segment.size
        view = memoryview(records)
        chunks: list = []
        for header in headers:
            patched = bytearray(view[header.position : header.position + BATCH_HEADER_SIZE])
            patch_base_offset(patched, 0, self.next_offset)
            patch_leader_epoch(patched, 0, 0)
            chunks.append(patched)
            chunks.append(view[header.position + BATCH_HEADER_SIZE : header.position + header.size])
            segment.index_batch(header, position + header.position, self.next_offset)
            self._remember_producer(header, self.next_offset)
            if header.attributes & TRANSACTIONAL_FLAG:
                self._track_transaction(view, header, self.next_offset)
            self.next_offset += header.offset_count
        segment.write(chunks)
        return first_offset

    # ---- fetch --------------------------------------------------------------------------
    def read(self, offset: int, max_bytes: int, allow_oversize: bool, end_offset: int | None = None) -> bytes:
        """Whole batches starting with the one that holds ``offset``, at most ``max_bytes``.

        The first batch may start before ``offset``; consumers skip records they did not
        ask for, as with Kafka. With ``end_offset`` (the last stable offset, for
        read_committed) no batch at or after it is returned. When even one batch exceeds ``max_bytes`` it is returned
        anyway if ``allow_oversize`` (the first partition of a fetch), so a consumer can
        always make progress.
        """
        segment_number = bisect.bisect_right(self.segment_bases, offset) - 1
        if segment_number < 0:
            return b""
        segment = self.segments[segment_number]
        # Skip segments that end before ``offset``, and empty ones a compaction left.
        while offset >= segment.next_offset or not segment.batch_count:
            segment_number += 1
            if segment_number >= len(self.segments):
                return b""
            segment = self.segments[segment_number]
        positions = segment.batch_positions
        first = segment.locate(offset)
        start = positions[first]
        limit = start + max_bytes
        if end_offset is not None:
            stop = bisect.bisect_left(segment.batch_offsets, end_offset, first)
            if stop <= first:
                return b""
            if stop < len(positions):
                limit = min(limit, positions[stop])
                allow_oversize = allow_oversize and positions[stop] > start
        if segment.size <= limit:
            end = segment.size
        else:
            after_last_fitting = bisect.bisect_right(positions, limit, first + 1)
            # positions[k] is where batch k ends; batch k-1 fits when positions[k] <= limit.
            end = positions[after_last_fitting - 1]
            if end == start:
                if not allow_oversize:
                    return b""
                end = positions[first + 1] if first + 1 < len(positions) else segment.size
        return segment.read(start, end)

    def bytes_after(self, offset: int) -> int:
        """Roughly how many stored bytes a fetch from ``offset`` could return now."""
        if offset >= self.next_offset:
            return 0
        total = 0
        for segment in reversed(self.segments):
            if segment.base_offset <= offset:
                if segment.batch_count and offset < segment.next_offset:
                    total += segment.size - segment.batch_positions[segment.locate(offset)]
                break
            total += segment.size
        return max(total, 1)

    def _batch_records(self, segment: Segment, number: int) -> list[cleaner.Record]:
        start = segment.batch_positions[number]
        end = segment.batch_positions[number + 1] if number + 1 < segment.batch_count else segment.size
        data = segment.read(start, end)
        return cleaner.decode_records(data, read_header(data, 0))

    def offset_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """The first record at or after the log start whose timestamp reaches ``timestamp``:
        ``(its offset, its timestamp)``, or None. Batches are found by their running maximum
        timestamp; only the batches that can hold the answer are decoded.
        """
        start_offset = self.log_start_offset
        for segment in self.segments:
            if segment.max_timestamp < timestamp or not segment.batch_count:
                continue
            number = bisect.bisect_left(segment.running_max_timestamps, timestamp)
            for candidate in range(number, segment.batch_count):
                if segment.batch_ends[candidate] <= start_offset:
                    continue
                for record in self._batch_records(segment, candidate):
                    if record.timestamp >= timestamp and record.offset >= start_offset:
                        return record.offset, record.timestamp
        return None

    def max_timestamp_offset(self) -> tuple[int, int]:
        """``(offset, timestamp)`` of the first record with the greatest timestamp (KIP-734)."""
        best_timestamp = max((segment.max_timestamp for segment in self.segments if segment.batch_count), default=-1)
        if best_timestamp < 0:
            return -1, -1
        found = self.offset_for_timestamp(best_timestamp)
        return found if found is not None else (-1, -1)

    # ---- retention ----------------------------------------------------------------------
    def enforce_retention(self, now_ms: int) -> int:
        """Delete whole closed segments past retention.ms or beyond retention.bytes."""
        if "delete" not in self.configs.get("cleanup.policy", "delete"):
            return 0
        retention_ms = int(self.configs.get("retention.ms", DEFAULT_TOPIC_CONFIGS["retention.ms"]))
        retention_bytes = int(self.configs.get("retention.bytes", DEFAULT_TOPIC_CONFIGS["retention.bytes"]))
        total_size = sum(segment.size for segment in self.segments)
        deleted = 0
        # The active (last) segment is never deleted, so the log end offset survives.
        while len(self.segments) > 1:
            oldest = self.segments[0]
            too_old = (
                retention_ms >= 0
                and oldest.max_timestamp >= 0
                and oldest.max_timestamp < now_ms - retention_ms
            )
            too_big = retention_bytes >= 0 and total_size - oldest.size >= retention_bytes
            if not (too_old or too_big):
                break
            total_size -= oldest.size
            oldest.delete()
            self.segments.pop(0)
            self.segment_bases.pop(0)
            deleted += 1
        if deleted and self.aborted_transactions:
            start = self.log_start_offset
            self.aborted_transactions = [entry for entry in self.aborted_transactions if entry[2] >= start]
        return deleted

    # ---- compaction ---------------------------------------------------------------------
    def plan_cleaning(self, now_ms: int, force: bool = False) -> tuple | None:
        """Arguments for ``cleaner.prepare`` when this partition is due for cleaning, else None.

        Due means a compacted topic whose closed segments are at least
        ``min.cleanable.dirty.ratio`` dirty (written since the last cleaning); ``force``
        cleans any compacted topic with a closed segment (expiring tombstones too).
        """
        if not self.compacted or len(self.segments) < 2 or self.deleted:
            return None
        # Like Kafka's cleaner, stop at the first open transaction: whether its records
        # count is not decided yet.
        stable = self.last_stable_offset
        closed = [segment for segment in self.segments[:-1] if segment.next_offset <= stable]
        if not closed:
            return None
        end_offset = self.segments[len(closed)].base_offset
        total = sum(segment.size for segment in closed)
        dirty = sum(segment.size for segment in closed if segment.next_offset > self.clean_until)
        if not force:
            ratio = float(
                self.configs.get("min.cleanable.dirty.ratio", DEFAULT_TOPIC_CONFIGS["min.cleanable.dirty.ratio"])
            )
            if dirty == 0 or dirty < ratio * total:
                return None
        keep = {base for state in self.producers.values() for _, _, base in state.recent_batches}
        aborted: dict[int, list[tuple[int, int]]] = {}
        for producer_id, first, last in self.aborted_transactions:
            aborted.setdefault(producer_id, []).append((first, last))
        return (self, closed, end_offset, self.clean_until, now_ms, keep, aborted)

    def swap_cleaned(self, result: cleaner.CleanResult) -> None:
        """Put cleaned segments in place of the ones they replace (on the event loop)."""
        for group in result.groups:
            if self.deleted:
                group.segment.close()
                continue
            start = next((n for n, segment in enumerate(self.segments) if segment is group.replaced[0]), -1)
            count = len(group.replaced)
            in_place = self.segments[start : start + count]
            if start < 0 or any(a is not b for a, b in zip(in_place, group.replaced, strict=True)):
                        # Cannot happen while retention and cleaning take turns; keep serving the old ones.
                logger.error("partition %s-%d: cleaned segments no longer in place", self.topic, self.index)
                group.segment.close()
                continue
            self.segments[start : start + count] = [group.segment]
            self.segment_bases[start : start + count] = [group.segment.base_offset]
            for old in group.replaced:
                old.close()
        if not self.deleted:
            self.clean_until = max(self.clean_until, result.clean_until)

    def clean_now(self, now_ms: int | None = None, force: bool = True) -> cleaner.CleanResult | None:
        """Clean synchronously on this thread (tests and tools)."""
        plan = self.plan_cleaning(int(time.time() * 1000) if now_ms is None else now_ms, force)
        if plan is None:
            return None
        result = cleaner.prepare(*plan)
        self.swap_cleaned(result)
        return result

    def dirty_fds(self) -> list[int]:
        return [segment.fd for segment in self.segments[-2:] if segment.fd >= 0]

    def close(self) -> None:
        for segment in self.segments:
            segment.close()


@dataclass
class Topic:
    name: str
    topic_id: uuid.UUID
    partitions: list[PartitionLog]
    configs: dict[str, str]

    def describe(self) -> dict:
        return {"topic_id": str(self.topic_id), "partitions": len(self.partitions), "configs": self.configs}


class SyncCoalescer:
    """Group commit: every caller waiting at once shares one fsync pass in a worker thread.

    A caller that arrives while a pass runs waits for the next pass, which starts as soon
    as the current one ends and covers everything written in between.
    """

    def __init__(self, store: LogStore):
        self._store = store
        self._running: asyncio.Future | None = None
        self._next: asyncio.Future | None = None

    def wait(self) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        if self._next is None:
            self._next = loop.create_future()
            if self._running is None:
                self._start(loop)
        return self._next

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        done, self._next = self._next, None
        assert done is not None
        fds = self._store.take_dirty_fds()
        self._running = loop.run_in_executor(None, _fsync_all, fds)
        self._running.add_done_callback(lambda finished: self._finished(loop, finished, done))

    def _finished(self, loop, finished: asyncio.Future, done: asyncio.Future) -> None:
        self._running = None
        error = finished.exception()
        if not done.done():
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)
        if self._next is not None:
            self._start(loop)


def _fsync_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.fsync(fd)
        except OSError as error:
            # A segment deleted by retention while queued: nothing left to make durable.
            if error.errno != 9:
                raise


class LogStore:
    """All topics and partitions, on disk under ``data_dir`` or in memory when it is None."""

    def __init__(self, data_dir: str | None, compact_defaults: dict[str, str] | None = None):
        self.data_dir = Path(data_dir) if data_dir else None
        self.compact_defaults = compact_defaults or {}
        # Retention and compaction take turns, so neither removes segments the other reads.
        self.maintenance_lock = asyncio.Lock()
        self.topics: dict[str, Topic] = {}
        self._dirty: set[PartitionLog] = set()
        self._dirty_fds: set[int] = set()
        self.highest_producer_id = -1
        self.syncer = SyncCoalescer(self)

    @property
    def durable(self) -> bool:
        return self.data_dir is not None

    def load(self) -> None:
        if self.data_dir is None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for leftover in self.data_dir.glob("*" + DELETED_SUFFIX):
            shutil.rmtree(leftover, ignore_errors=True)
        topics_file = self.data_dir / TOPICS_FILE
        if not topics_file.exists():
            return
        started = time.monotonic()
        described = json.loads(topics_file.read_text())
        batches = 0
        for name, info in described.items():
            topic = Topic(name, uuid.UUID(info["topic_id"]), [], dict(info.get("configs", {})))
            for index in range(int(info["partitions"])):
                partition = self._new_partition(name, index, topic.configs)
                partition.recover()
                batches += sum(segment.batch_count for segment in partition.segments)
                if partition.producers:
                    self.highest_producer_id = max(self.highest_producer_id, *partition.producers)
                topic.partitions.append(partition)
            self.topics[name] = topic
        logger.info(
            "recovered %d topics, %d batches from %s in %.2fs",
            len(self.topics),
            batches,
            self.data_dir,
            time.monotonic() - started,
        )

    def _new_partition(self, name: str, index: int, configs: dict[str, str]) -> PartitionLog:
        return PartitionLog(name, index, self._partition_dir(name, index), configs, self.compact_defaults)

    def _partition_dir(self, topic: str, index: int) -> Path | None:
        if self.data_dir is None:
            return None
        return self.data_dir / f"{topic}-{index}"

    def _save_topics(self) -> None:
        if self.data_dir is None:
            return
        described = {name: topic.describe() for name, topic in self.topics.items()}
        temporary = self.data_dir / (TOPICS_FILE + ".tmp")
        with open(temporary, "w") as handle:
            json.dump(described, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.data_dir / TOPICS_FILE)
        directory_fd = os.open(self.data_dir, os.O_RDONLY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)

    def create_topic(self, name: str, partitions: int, configs: dict[str, str]) -> Topic:
        topic = Topic(name, uuid.uuid4(), [], dict(configs))
        for index in range(partitions):
            partition = self._new_partition(name, index, topic.configs)
            partition.open_empty()
            topic.partitions.append(partition)
        self.topics[name] = topic
        self._save_topics()
        logger.info("created topic %s with %d partitions", name, partitions)
        return topic

    def set_topic_configs(self, name: str, configs: dict[str, str]) -> None:
        """Replace a topic's configs; its partitions share the dict, so they see the change."""
        topic = self.topics[name]
        topic.configs.clear()
        topic.configs.update(configs)
        self._save_topics()
        logger.info("configs of topic %s set to %s", name, configs)

    def add_partitions(self, name: str, count: int) -> None:
        topic = self.topics[name]
        for index in range(len(topic.partitions), count):
            partition = self._new_partition(name, index, topic.configs)
            partition.open_empty()
            topic.partitions.append(partition)
        self._save_topics()

    def delete_topic(self, name: str) -> None:
        topic = self.topics.pop(name)
        self._save_topics()
        for partition in topic.partitions:
            partition.deleted = True
            partition.close()
            self._dirty.discard(partition)
            if partition.directory is not None and partition.directory.exists():
                doomed = partition.directory.with_name(
                    partition.directory.name + "." + uuid.uuid4().hex + DELETED_SUFFIX
                )
                partition.directory.rename(doomed)
                shutil.rmtree(doomed, ignore_errors=True)
        logger.info("deleted topic %s", name)

    def partition(self, topic: str, index: int) -> PartitionLog | None:
        found = self.topics.get(topic)
        if found is None or not 0 <= index < len(found.partitions):
            return None
        return found.partitions[index]

    def mark_dirty(self, partition: PartitionLog) -> None:
        if self.data_dir is not None:
            self._dirty.add(partition)

    def mark_fd_dirty(self, fd: int) -> None:
        if fd >= 0:
            self._dirty_fds.add(fd)

    def take_dirty_fds(self) -> list[int]:
        fds = [fd for partition in self._dirty for fd in partition.dirty_fds()]
        fds.extend(self._dirty_fds)
        self._dirty = set()
        self._dirty_fds = set()
        return fds

    def enforce_retention(self) -> int:
        now_ms = int(time.time() * 1000)
        deleted = 0
        for topic in self.topics.values():
            for partition in topic.partitions:
                deleted += partition.enforce_retention(now_ms)
        if deleted:
            logger.info("retention deleted %d segments", deleted)
        return deleted

    async def run_cleaner(self, force: bool = False) -> int:
        """Compact every partition that is due (all compacted ones with ``force``); return records removed.

        The reading and rewriting happen in a worker thread, one partition at a time; only
        the swap of segment objects runs on the event loop.
        """
        loop = asyncio.get_running_loop()
        removed = 0
        async with self.maintenance_lock:
            for topic in list(self.topics.values()):
                for partition in topic.partitions:
                    plan = partition.plan_cleaning(int(time.time() * 1000), force)
                    if plan is None:
                        continue
                    started = time.monotonic()
                    try:
                        result = await loop.run_in_executor(None, cleaner.prepare, *plan)
                    except Exception:
                        if partition.deleted:
                            continue
                        logger.exception("cleaning %s-%d failed", partition.topic, partition.index)
                        continue
                    partition.swap_cleaned(result)
                    removed += result.records_removed
                    if result.groups:
                        logger.info(
                            "cleaned %s-%d: %d records removed, %d -> %d bytes in %d segments, %.2fs",
                            partition.topic,
                            partition.index,
                            result.records_removed,
                            sum(group.bytes_before for group in result.groups),
                            sum(group.bytes_after for group in result.groups),
                            len(result.groups),
                            time.monotonic() - started,
                        )
        return removed

    def flush_all(self) -> None:
        for topic in self.topics.values():
            for partition in topic.partitions:
                _fsync_all(partition.dirty_fds())

    def close(self) -> None:
        if self.data_dir is not None:
            self.flush_all()
        for topic in self.topics.values():
            for partition in topic.partitions:
                partition.close()
