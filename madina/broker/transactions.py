"""Transaction coordinator for one node: transactional ids, producer fencing, commit and abort.

The state machine is Kafka's TransactionCoordinator, run synchronously because the
coordinator and every partition leader are this process:

    Empty --AddPartitions/AddOffsets--> Ongoing --EndTxn--> PrepareCommit|PrepareAbort
    PrepareCommit|PrepareAbort --markers written, offsets applied--> CompleteCommit|CompleteAbort

Every transition is appended to a transaction log (JSON lines, ``transactions.jsonl``,
fsynced before an answer depends on it), one line holding the whole state of one
transactional id; the last line of an id wins at load. A log that stops in a Prepare
state (``kill -9`` while markers were being written) is completed at start-up, which
is safe because writing a marker twice changes nothing a consumer sees. A transaction
left Ongoing is aborted when its timeout passes, or when its producer starts again
(InitProducerId with the same transactional id), as with Kafka.

Fencing is by epoch: InitProducerId bumps the epoch of the transactional id, aborting
what the previous incarnation left open with markers at the new epoch, so the old
producer's writes (lower epoch) are refused by every partition it touched and its
coordinator requests get PRODUCER_FENCED.

Offsets committed inside a transaction (TxnOffsetCommit) stay pending in the
transaction and reach the group only when it commits.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from madina.broker import errors

logger = logging.getLogger("madina.broker")

TRANSACTIONS_FILE = "transactions.jsonl"
# Kafka's transaction.max.timeout.ms default
MAX_TRANSACTION_TIMEOUT_MS = 900_000
MAX_EPOCH = 0x7FFF - 1

INVALID_PRODUCER_ID_MAPPING = 49
INVALID_TXN_STATE = 48
CONCURRENT_TRANSACTIONS = 51
OPERATION_NOT_ATTEMPTED = 55
PRODUCER_FENCED = 90


class TxnState(enum.Enum):
    EMPTY = "Empty"
    ONGOING = "Ongoing"
    PREPARE_COMMIT = "PrepareCommit"
    PREPARE_ABORT = "PrepareAbort"
    COMPLETE_COMMIT = "CompleteCommit"
    COMPLETE_ABORT = "CompleteAbort"


# (offset, metadata, leader epoch) of a pending transactional offset commit
PendingOffset = tuple[int, str | None, int]


@dataclass
class Transaction:
    transactional_id: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState = TxnState.EMPTY
    partitions: set[tuple[str, int]] = field(default_factory=set)
    groups: dict[str, dict[tuple[str, int], PendingOffset]] = field(default_factory=dict)
    started_ms: int = -1
    updated_ms: int = 0

    def to_json(self) -> dict:
        return {
            "id": self.transactional_id,
            "pid": self.producer_id,
            "epoch": self.producer_epoch,
            "timeout": self.timeout_ms,
            "state": self.state.value,
            "partitions": sorted([topic, index] for topic, index in self.partitions),
            "groups": {
                group: [[topic, index, *pending] for (topic, index), pending in sorted(offsets.items())]
                for group, offsets in self.groups.items()
            },
            "started": self.started_ms,
            "updated": self.updated_ms,
        }

    @classmethod
    def from_json(cls, entry: dict) -> Transaction:
        return cls(
            transactional_id=entry["id"],
            producer_id=entry["pid"],
            producer_epoch=entry["epoch"],
            timeout_ms=entry["timeout"],
            state=TxnState(entry["state"]),
            partitions={(topic, index) for topic, index in entry["partitions"]},
            groups={
                group: {(topic, index): (offset, metadata, epoch) for topic, index, offset, metadata, epoch in rows}
                for group, rows in entry["groups"].items()
            },
            started_ms=entry.get("started", -1),
            updated_ms=entry.get("updated", 0),
        )


class TransactionLog:
    """The durable record of every transactional id's state (JSON lines, last line wins)."""

    def __init__(self, data_dir: str | None):
        self.path = Path(data_dir) / TRANSACTIONS_FILE if data_dir else None
        self.fd = -1

    def load(self) -> dict[str, Transaction]:
        found: dict[str, Transaction] = {}
        if self.path is None:
            return found
        lines = 0
        if self.path.exists():
            with open(self.path, "rb") as handle:
                for raw in handle:
                    lines += 1
                    try:
                        transaction = Transaction.from_json(json.loads(raw))
                    except (ValueError, KeyError, TypeError):
                        logger.warning("ignoring a torn line in %s", self.path)
                        continue
                    found[transaction.transactional_id] = transaction
        if lines > 2 * len(found) + 100:
            self._rewrite(found)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        return found

    def _rewrite(self, transactions: dict[str, Transaction]) -> None:
        assert self.path is not None
        temporary = self.path.with_suffix(".tmp")
        with open(temporary, "w") as handle:
            for transaction in transactions.values():
                handle.write(json.dumps(transaction.to_json(), separators=(",", ":")) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)

    def write(self, transaction: Transaction) -> None:
        if self.fd < 0:
            return
        view = memoryview((json.dumps(transaction.to_json(), separators=(",", ":")) + "\n").encode())
        while view:
            view = view[os.write(self.fd, view) :]

    def close(self) -> None:
        if self.fd >= 0:
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1


# write_marker(topic, partition, producer id, epoch, commit) -> False if the partition is gone
MarkerWriter = Callable[[str, int, int, int, bool], bool]
# commit_offsets(group, [(topic, partition, offset, metadata, leader epoch)])
OffsetApplier = Callable[[str, list[tuple[str, int, int, str | None, int]]], None]


class TransactionCoordinator:
    """Every transactional id of this node, and the producer ids and epochs it hands out."""

    def __init__(
        self,
        log: TransactionLog,
        write_marker: MarkerWriter,
        apply_offsets: OffsetApplier,
        allocate_producer_id: Callable[[], int],
        max_timeout_ms: int = MAX_TRANSACTION_TIMEOUT_MS,
    ):
        self.log = log
        self.write_marker = write_marker
        self.apply_offsets = apply_offsets
        self.allocate_producer_id = allocate_producer_id
        self.max_timeout_ms = max_timeout_ms
        self.transactions: dict[str, Transaction] = {}
        # producer id -> its transactional id's state (the id may since have moved on)
        self.by_producer: dict[int, Transaction] = {}

    @staticmethod
    def _now() -> int:
        return int(time.time() * 1000)

    def load(self) -> None:
        """Read the log and finish the transactions a crash left half-completed."""
        self.transactions = self.log.load()
        self.by_producer = {t.producer_id: t for t in self.transactions.values()}
        for transaction in self.transactions.values():
            if transaction.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
                logger.info(
                    "completing %s of transaction %s left by the last run",
                    transaction.state.value,
                    transaction.transactional_id,
                )
                self._complete(transaction, transaction.state is TxnState.PREPARE_COMMIT)

    @property
    def highest_producer_id(self) -> int:
        return max((t.producer_id for t in self.transactions.values()), default=-1)

    def _save(self, transaction: Transaction) -> None:
        self.by_producer[transaction.producer_id] = transaction
        transaction.updated_ms = self._now()
        self.log.write(transaction)

    # ---- requests -----------------------------------------------------------------------
    def init_producer_id(
        self, transactional_id: str, timeout_ms: int, producer_id: int = -1, producer_epoch: int = -1
    ) -> tuple[int, int, int]:
        """``(error, producer id, epoch)`` for a transactional producer starting or re-starting."""
        if not 0 < timeout_ms <= self.max_timeout_ms:
            return errors.INVALID_TRANSACTION_TIMEOUT, -1, -1
        transaction = self.transactions.get(transactional_id)
        if transaction is None:
            transaction = Transaction(transactional_id, self.allocate_producer_id(), 0, timeout_ms)
            self.transactions[transactional_id] = transaction
            self._save(transaction)
            return errors.NONE, transaction.producer_id, transaction.producer_epoch
        if producer_id >= 0 and (
            producer_id != transaction.producer_id or producer_epoch != transaction.producer_epoch
        ):
            # KIP-360: only the current incarnation may bump its own epoch.
            if producer_id == transaction.producer_id and producer_epoch < transaction.producer_epoch:
                return PRODUCER_FENCED, -1, -1
            return errors.INVALID_PRODUCER_EPOCH, -1, -1
        if transaction.state is TxnState.ONGOING:
            # The previous incarnation left a transaction open: abort it at a bumped epoch,
            # which fences that producer everywhere it wrote.
            self._bump_epoch(transaction)
            self._complete(transaction, commit=False)
        self._bump_epoch(transaction)
        transaction.timeout_ms = timeout_ms
        transaction.state = TxnState.EMPTY
        self._save(transaction)
        return errors.NONE, transaction.producer_id, transaction.producer_epoch

    def _bump_epoch(self, transaction: Transaction) -> None:
        if transaction.producer_epoch >= MAX_EPOCH:
            transaction.producer_id = self.allocate_producer_id()
            transaction.producer_epoch = 0
        else:
            transaction.producer_epoch += 1

    def _check(self, transactional_id: str, producer_id: int, producer_epoch: int) -> tuple[int, Transaction | None]:
        transaction = self.transactions.get(transactional_id)
        if transaction is None or transaction.producer_id != producer_id:
            return INVALID_PRODUCER_ID_MAPPING, None
        if producer_epoch < transaction.producer_epoch:
            return PRODUCER_FENCED, None
        if producer_epoch > transaction.producer_epoch:
            return errors.INVALID_PRODUCER_EPOCH, None
        return errors.NONE, transaction

    def _begin(self, transaction: Transaction) -> int:
        if transaction.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
            return CONCURRENT_TRANSACTIONS
        if transaction.state is not TxnState.ONGOING:
            transaction.state = TxnState.ONGOING
            transaction.partitions = set()
            transaction.groups = {}
            transaction.started_ms = self._now()
        return errors.NONE

    def add_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: list[tuple[str, int]],
        exists: Callable[[str, int], bool],
    ) -> dict[tuple[str, int], int]:
        """Error code per partition (all the same unless some partitions are unknown)."""
        error, transaction = self._check(transactional_id, producer_id, producer_epoch)
        if transaction is None:
            return dict.fromkeys(partitions, error)
        unknown = {partition for partition in partitions if not exists(*partition)}
        if unknown:
            return {
                partition: errors.UNKNOWN_TOPIC_OR_PARTITION if partition in unknown else OPERATION_NOT_ATTEMPTED
                for partition in partitions
            }
        error = self._begin(transaction)
        if error == errors.NONE and not set(partitions) <= transaction.partitions:
            transaction.partitions.update(partitions)
            self._save(transaction)
        return dict.fromkeys(partitions, error)

    def add_offsets(self, transactional_id: str, producer_id: int, producer_epoch: int, group_id: str) -> int:
        error, transaction = self._check(transactional_id, producer_id, producer_epoch)
        if transaction is None:
            return error
        error = self._begin(transaction)
        if error == errors.NONE and group_id not in transaction.groups:
            transaction.groups[group_id] = {}
            self._save(transaction)
        return error

    def txn_offset_commit(
        self,
        transactional_id: str,
        group_id: str,
        producer_id: int,
        producer_epoch: int,
        offsets: list[tuple[str, int, int, str | None, int]],
    ) -> int:
        error, transaction = self._check(transactional_id, producer_id, producer_epoch)
        if transaction is None:
            return error
        if transaction.state is not TxnState.ONGOING or group_id not in transaction.groups:
            return INVALID_TXN_STATE
        pending = transaction.groups[group_id]
        for topic, index, offset, metadata, leader_epoch in offsets:
            pending[(topic, index)] = (offset, metadata, leader_epoch)
        self._save(transaction)
        return errors.NONE

    def end_txn(self, transactional_id: str, producer_id: int, producer_epoch: int, commit: bool) -> int:
        error, transaction = self._check(transactional_id, producer_id, producer_epoch)
        if transaction is None:
            return error
        if transaction.state is TxnState.ONGOING:
            self._complete(transaction, commit)
            return errors.NONE
        if transaction.state is (TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT):
            return errors.NONE  # a retry of the EndTxn that already completed
        return INVALID_TXN_STATE

    def _complete(self, transaction: Transaction, commit: bool) -> None:
        transaction.state = TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT
        self._save(transaction)
        for topic, index in sorted(transaction.partitions):
            self.write_marker(topic, index, transaction.producer_id, transaction.producer_epoch, commit)
        if commit:
            for group_id, pending in transaction.groups.items():
                if pending:
                    self.apply_offsets(
                        group_id,
                        [(topic, index, *value) for (topic, index), value in sorted(pending.items())],
                    )
        transaction.state = TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT
        transaction.partitions = set()
        transaction.groups = {}
        transaction.started_ms = -1
        self._save(transaction)

    def has_partition(self, producer_id: int, producer_epoch: int, topic: str, index: int) -> bool:
        """Whether that producer's open transaction has added the partition (produce verification)."""
        transaction = self.by_producer.get(producer_id)
        return (
            transaction is not None
            and transaction.producer_id == producer_id
            and transaction.state is TxnState.ONGOING
            and transaction.producer_epoch == producer_epoch
            and (topic, index) in transaction.partitions
        )

    def pending_offsets(self, group_id: str) -> set[tuple[str, int]]:
        """Partitions of ``group_id`` with a transactional commit not yet decided."""
        found: set[tuple[str, int]] = set()
        for transaction in self.transactions.values():
            if transaction.state is TxnState.ONGOING:
                found.update(transaction.groups.get(group_id, {}))
        return found

    def abort_expired(self, now_ms: int | None = None) -> list[str]:
        """Abort (and fence) every transaction open longer than its timeout; return their ids."""
        now_ms = self._now() if now_ms is None else now_ms
        expired = [
            transaction
            for transaction in self.transactions.values()
            if transaction.state is TxnState.ONGOING and now_ms - transaction.started_ms > transaction.timeout_ms
        ]
        for transaction in expired:
            logger.info("aborting transaction %s: open past its timeout", transaction.transactional_id)
            self._bump_epoch(transaction)
            self._complete(transaction, commit=False)
        return [transaction.transactional_id for transaction in expired]

    def close(self) -> None:
        self.log.close()
