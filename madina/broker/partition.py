"""The log of one topic partition: its segments, offsets, idempotent producers and transactions.

Layout with a data directory::

    DATA_DIR/<topic>-<partition>/<base offset:020>.log   stored batches (madina.broker.segment)
    DATA_DIR/<topic>-<partition>/log-start-offset        DeleteRecords' low watermark

At start-up (``PartitionLog.recover``) every segment is walked header by header (61 bytes per
batch, via mmap) and the in-memory index is rebuilt. The last segment is also CRC-checked batch
by batch, so the half-written tail a ``kill -9`` or power loss leaves behind is found and cut
off before anything is served. Compaction (madina.broker.cleaner) rewrites closed segments in a
worker thread; this class plans it and swaps the result in on the event loop.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import mmap
import os
import time
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
from madina.broker.segment import SEGMENT_SUFFIX, Segment
from madina.broker.topic_configs import DEFAULT_TOPIC_CONFIGS

logger = logging.getLogger("madina.broker")

# DeleteRecords' low watermark when it falls inside a segment (Kafka's log-start-offset checkpoint)
START_OFFSET_FILE = "log-start-offset"
# Present once a cleaning rewrote segments: their offset gaps are compaction's, not damage, even
# after the topic stops being compacted (a config change Kafka allows), so recovery keeps them.
CLEANED_MARKER_FILE = "cleaned"
# Remembered per producer so a retried batch is recognised; Kafka keeps the same five.
PRODUCER_BATCHES_REMEMBERED = 5


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
        gaps_allowed = self.compacted or (self.directory / CLEANED_MARKER_FILE).exists()
        if self.compacted:
            self._mark_cleaned()  # cleaned before the marker existed, perhaps
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
            if result.groups:
                self._mark_cleaned()

    def _mark_cleaned(self) -> None:
        if self.directory is None or (self.directory / CLEANED_MARKER_FILE).exists():
            return
        marker = self.directory / CLEANED_MARKER_FILE
        with open(marker, "w") as handle:
            os.fsync(handle.fileno())
        directory_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)

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
