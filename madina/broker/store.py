"""The log store: every topic and its partition logs, on disk under a data directory or in memory.

Layout with a data directory::

    DATA_DIR/topics.json              topic names, ids, partition counts, configs
    DATA_DIR/<topic>-<partition>/     one partition log (madina.broker.partition)

Without a data directory the same structures live in bytearrays and nothing touches the disk.
The store also runs the maintenance both kinds share: retention, and compaction in turn with it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from madina.broker import cleaner
from madina.broker.group_commit import SyncCoalescer, fsync_all
from madina.broker.partition import PartitionLog

logger = logging.getLogger("madina.broker")

TOPICS_FILE = "topics.json"
# A deleted topic's directory is renamed to this suffix before removal, so a crash mid-removal
# leaves a directory start-up recognises and removes, never one a re-created topic would reuse.
DELETED_SUFFIX = ".deleted"


@dataclass
class Topic:
    name: str
    topic_id: uuid.UUID
    partitions: list[PartitionLog]
    configs: dict[str, str]

    def describe(self) -> dict:
        return {"topic_id": str(self.topic_id), "partitions": len(self.partitions), "configs": self.configs}


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
        self.syncer = SyncCoalescer(self.take_dirty_fds)

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
                fsync_all(partition.dirty_fds())

    def close(self) -> None:
        if self.data_dir is not None:
            self.flush_all()
        for topic in self.topics.values():
            for partition in topic.partitions:
                partition.close()
