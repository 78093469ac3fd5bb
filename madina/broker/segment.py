"""A segment: one file (or, without a data directory, one bytearray) of consecutive stored batches.

A segment file is named by its first offset, ``<base offset:020>.log``, and holds record batches
byte for byte as produced (only each batch's base offset and leader epoch patched). Its index of
batch offsets, file positions and running max timestamps lives in memory and is rebuilt at
start-up by the partition log; there is no index file.
"""

from __future__ import annotations

import bisect
import contextlib
import os
from array import array
from pathlib import Path

from madina.broker.records import BatchHeader

SEGMENT_SUFFIX = ".log"


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
