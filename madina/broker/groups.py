"""Consumer group coordinator: the classic JoinGroup/SyncGroup protocol and committed offsets.

The state machine follows Kafka's GroupCoordinator:

    Empty --join--> PreparingRebalance --all joined / rebalance timeout--> CompletingRebalance
    CompletingRebalance --leader's SyncGroup--> Stable --join, leave, expiry--> PreparingRebalance

A rebalance waits until every known member has sent JoinGroup again, or until the longest
rebalance timeout passes, after which members that did not rejoin are dropped. A member
that stops heartbeating for its session timeout is removed and triggers a rebalance, so
survivors see REBALANCE_IN_PROGRESS on their next heartbeat. Join and sync calls that have
to wait return futures; everything else answers at once.

The first rebalance out of Empty waits longer, as Kafka's ``group.initial.rebalance.delay.ms``
does: otherwise, of consumers started together, the first would form a generation alone,
take every partition and drain them before the others are let in. That rebalance lasts the
delay, and each member new to the group during it buys another delay, up to the first
member's rebalance timeout. It does not end early when everyone known has joined, because
the members it waits for are the ones not known yet. A delay of 0 turns this off.

Committed offsets live in memory and, with a data directory, in an append-only JSON-lines
file that is compacted when loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from madina.broker import errors

logger = logging.getLogger("madina.broker")

OFFSETS_FILE = "consumer_offsets.jsonl"
# Kafka's default group.initial.rebalance.delay.ms
DEFAULT_INITIAL_REBALANCE_DELAY_MS = 3000


class GroupState(enum.Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass
class JoinResult:
    error: int
    member_id: str
    generation: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    # (member id, group instance id, subscription metadata); only the leader gets them
    members: list[tuple[str, str | None, bytes]] = field(default_factory=list)


@dataclass
class SyncResult:
    error: int
    assignment: bytes = b""
    protocol_type: str | None = None
    protocol_name: str | None = None


@dataclass
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocols: list[tuple[str, bytes]]
    assignment: bytes = b""
    join_future: asyncio.Future | None = None
    sync_future: asyncio.Future | None = None
    deadline: float = 0.0
    expiry_timer: asyncio.TimerHandle | None = None

    def metadata_for(self, protocol_name: str | None) -> bytes:
        for name, metadata in self.protocols:
            if name == protocol_name:
                return metadata
        return b""

    @property
    def awaiting_join(self) -> bool:
        return self.join_future is not None and not self.join_future.done()


@dataclass
class Group:
    group_id: str
    state: GroupState = GroupState.EMPTY
    generation: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str | None = None
    members: dict[str, Member] = field(default_factory=dict)
    pending_member_timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    rebalance_timer: asyncio.TimerHandle | None = None
    # Loop time at which the first rebalance out of Empty completes at the latest; None
    # outside such a rebalance.
    initial_rebalance_deadline: float | None = None
    new_member_added: bool = False


@dataclass
class CommittedOffset:
    offset: int
    metadata: str | None
    leader_epoch: int = -1


class OffsetStore:
    """Committed offsets per group, persisted as JSON lines when a data directory is set."""

    def __init__(self, data_dir: str | None):
        self.path = Path(data_dir) / OFFSETS_FILE if data_dir else None
        self.offsets: dict[str, dict[tuple[str, int], CommittedOffset]] = {}
        self.fd = -1

    def load(self) -> None:
        if self.path is None:
            return
        lines = 0
        if self.path.exists():
            with open(self.path, "rb") as handle:
                for raw in handle:
                    lines += 1
                    try:
                        entry = json.loads(raw)
                    except ValueError:
                        # A line torn by a crash mid-write; everything before it is intact.
                        logger.warning("ignoring a torn line in %s", self.path)
                        continue
                    self._apply(entry)
        live = sum(len(group) for group in self.offsets.values())
        if lines > 2 * live + 100:
            self._rewrite()
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def _apply(self, entry: dict) -> None:
        group = entry["g"]
        if entry.get("delete"):
            self.offsets.pop(group, None)
            return
        if "forget_topic" in entry:
            for committed in self.offsets.values():
                for key in [key for key in committed if key[0] == entry["forget_topic"]]:
                    del committed[key]
            return
        self.offsets.setdefault(group, {})[(entry["t"], entry["p"])] = CommittedOffset(
            entry["o"], entry.get("m"), entry.get("e", -1)
        )

    def _rewrite(self) -> None:
        assert self.path is not None
        temporary = self.path.with_suffix(".tmp")
        with open(temporary, "w") as handle:
            for group, committed in self.offsets.items():
                for (topic, partition), value in committed.items():
                    handle.write(
                        json.dumps(
                            {
                                "g": group,
                                "t": topic,
                                "p": partition,
                                "o": value.offset,
                                "m": value.metadata,
                                "e": value.leader_epoch,
                            }
                        )
                        + "\n"
                    )
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)

    def _persist(self, entries: list[dict]) -> None:
        if self.fd < 0:
            return
        data = "".join(json.dumps(entry, separators=(",", ":")) + "\n" for entry in entries).encode()
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def commit(self, group_id: str, offsets: list[tuple[str, int, int, str | None, int]]) -> None:
        committed = self.offsets.setdefault(group_id, {})
        for topic, partition, offset, metadata, leader_epoch in offsets:
            committed[(topic, partition)] = CommittedOffset(offset, metadata, leader_epoch)
        self._persist(
            [
                {"g": group_id, "t": topic, "p": partition, "o": offset, "m": metadata, "e": epoch}
                for topic, partition, offset, metadata, epoch in offsets
            ]
        )

    def delete_group(self, group_id: str) -> None:
        self.offsets.pop(group_id, None)
        self._persist([{"g": group_id, "delete": True}])

    def forget_topic(self, topic: str) -> None:
        if any(key[0] == topic for committed in self.offsets.values() for key in committed):
            self._apply({"g": "", "forget_topic": topic})
            self._persist([{"g": "", "forget_topic": topic}])

    def close(self) -> None:
        if self.fd >= 0:
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1


class GroupCoordinator:
    """All consumer groups of this single-node cluster (node 0 coordinates every group)."""

    def __init__(
        self,
        offsets: OffsetStore,
        min_session_timeout_ms: int = 1000,
        max_session_timeout_ms: int = 3_600_000,
        initial_rebalance_delay_ms: int = DEFAULT_INITIAL_REBALANCE_DELAY_MS,
    ):
        self.groups: dict[str, Group] = {}
        self.offsets = offsets
        self.min_session_timeout_ms = min_session_timeout_ms
        self.max_session_timeout_ms = max_session_timeout_ms
        self.initial_rebalance_delay_ms = initial_rebalance_delay_ms
        for group_id in offsets.offsets:
            self.groups[group_id] = Group(group_id)

    @property
    def _loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    # ---- JoinGroup ----------------------------------------------------------------------
    def join(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        client_id: str,
        client_host: str,
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
        require_known_member_id: bool,
    ) -> JoinResult | asyncio.Future:
        if not group_id:
            return JoinResult(errors.INVALID_GROUP_ID, member_id)
        if not self.min_session_timeout_ms <= session_timeout_ms <= self.max_session_timeout_ms:
            return JoinResult(errors.INVALID_SESSION_TIMEOUT, member_id)
        group = self.groups.setdefault(group_id, Group(group_id))
        if not protocols or (
            group.members
            and (
                protocol_type != group.protocol_type
                or not self._common_protocols(group, [name for name, _ in protocols])
            )
        ):
            return JoinResult(errors.INCONSISTENT_GROUP_PROTOCOL, member_id)
        rebalance_timeout_ms = rebalance_timeout_ms if rebalance_timeout_ms > 0 else session_timeout_ms

        if not member_id:
            member_id = f"{client_id or 'member'}-{uuid.uuid4()}"
            if require_known_member_id:
                # KIP-394: hand out the id first, count the member once it comes back with it.
                group.pending_member_timers[member_id] = self._loop.call_later(
                    session_timeout_ms / 1000, self._expire_pending_member, group, member_id
                )
                return JoinResult(errors.MEMBER_ID_REQUIRED, member_id)
        elif member_id in group.pending_member_timers:
            group.pending_member_timers.pop(member_id).cancel()
        elif member_id not in group.members:
            return JoinResult(errors.UNKNOWN_MEMBER_ID, member_id)

        member = group.members.get(member_id)
        if member is None:
            member = Member(
                member_id,
                group_instance_id,
                client_id,
                client_host,
                session_timeout_ms,
                rebalance_timeout_ms,
                protocols,
            )
            group.members[member_id] = member
            if group.initial_rebalance_deadline is not None:
                group.new_member_added = True
            if group.protocol_type is None:
                group.protocol_type = protocol_type
            logger.info("group %s: member %s joins", group_id, member_id)
        else:
            unchanged = member.protocols == protocols
            member.protocols = protocols
            member.session_timeout_ms = session_timeout_ms
            member.rebalance_timeout_ms = rebalance_timeout_ms
            if (unchanged and group.state is GroupState.COMPLETING_REBALANCE) or (
                unchanged and group.state is GroupState.STABLE and member_id != group.leader_id
            ):
                # A follower rejoining without changes just gets the current generation back.
                self._touch(group, member)
                return self._join_result(group, member)
        if member.awaiting_join:
            assert member.join_future is not None
            member.join_future.set_result(JoinResult(errors.REBALANCE_IN_PROGRESS, member_id))
        member.join_future = self._loop.create_future()
        future = member.join_future
        if group.state is not GroupState.PREPARING_REBALANCE:
            self._prepare_rebalance(group, f"member {member_id} joined")
        self._maybe_complete_join(group)
        return future

    @staticmethod
    def _common_protocols(group: Group, extra: list[str] | None = None) -> list[str]:
        members = list(group.members.values())
        if not members:
            return list(extra or [])
        candidates = [name for name, _ in members[0].protocols]
        for member in members[1:]:
            names = {name for name, _ in member.protocols}
            candidates = [name for name in candidates if name in names]
        if extra is not None:
            candidates = [name for name in candidates if name in extra]
        return candidates

    def _prepare_rebalance(self, group: Group, reason: str) -> None:
        logger.info("group %s: rebalancing generation %d (%s)", group.group_id, group.generation, reason)
        initial = group.state is GroupState.EMPTY and self.initial_rebalance_delay_ms > 0
        for member in group.members.values():
            if member.sync_future is not None and not member.sync_future.done():
                member.sync_future.set_result(SyncResult(errors.REBALANCE_IN_PROGRESS))
            member.sync_future = None
        group.state = GroupState.PREPARING_REBALANCE
        if group.rebalance_timer is not None:
            group.rebalance_timer.cancel()
        timeout_ms = max((member.rebalance_timeout_ms for member in group.members.values()), default=0)
        if initial:
            delay_s = self.initial_rebalance_delay_ms / 1000
            group.initial_rebalance_deadline = self._loop.time() + max(delay_s, timeout_ms / 1000)
            group.new_member_added = False
            group.rebalance_timer = self._loop.call_later(delay_s, self._initial_delay_elapsed, group)
            return
        group.rebalance_timer = self._loop.call_later(timeout_ms / 1000, self._rebalance_timed_out, group)

    def _initial_delay_elapsed(self, group: Group) -> None:
        group.rebalance_timer = None
        if group.state is not GroupState.PREPARING_REBALANCE or group.initial_rebalance_deadline is None:
            return
        remaining_s = group.initial_rebalance_deadline - self._loop.time()
        if group.new_member_added and remaining_s > 0:
            group.new_member_added = False
            group.rebalance_timer = self._loop.call_later(
                min(self.initial_rebalance_delay_ms / 1000, remaining_s), self._initial_delay_elapsed, group
            )
            return
        self._rebalance_timed_out(group)

    def _rebalance_timed_out(self, group: Group) -> None:
        group.rebalance_timer = None
        if group.state is not GroupState.PREPARING_REBALANCE:
            return
        for member in [member for member in group.members.values() if not member.awaiting_join]:
            logger.info(
                "group %s: member %s did not rejoin within the rebalance timeout",
                group.group_id,
                member.member_id,
            )
            self._remove_member(group, member)
        self._complete_join(group)

    def _maybe_complete_join(self, group: Group) -> None:
        if (
            group.state is not GroupState.PREPARING_REBALANCE
            or group.pending_member_timers
            or group.initial_rebalance_deadline is not None
        ):
            return
        if all(member.awaiting_join for member in group.members.values()):
            self._complete_join(group)

    def _complete_join(self, group: Group) -> None:
        if group.rebalance_timer is not None:
            group.rebalance_timer.cancel()
            group.rebalance_timer = None
        group.initial_rebalance_deadline = None
        group.new_member_added = False
        group.generation += 1
        if not group.members:
            group.state = GroupState.EMPTY
            group.protocol_name = None
            group.leader_id = None
            logger.info("group %s: empty at generation %d", group.group_id, group.generation)
            return
        group.protocol_name = self._select_protocol(group)
        if group.leader_id not in group.members:
            group.leader_id = next(iter(group.members))
        group.state = GroupState.COMPLETING_REBALANCE
        logger.info(
            "group %s: generation %d with %d members, protocol %s, leader %s",
            group.group_id,
            group.generation,
            len(group.members),
            group.protocol_name,
            group.leader_id,
        )
        for member in group.members.values():
            member.assignment = b""
            future = member.join_future
            member.join_future = None
            self._touch(group, member)
            if future is not None and not future.done():
                future.set_result(self._join_result(group, member))

    def _select_protocol(self, group: Group) -> str | None:
        candidates = self._common_protocols(group)
        votes = Counter(
            next(name for name, _ in member.protocols if name in candidates)
            for member in group.members.values()
        )
        return max(candidates, key=lambda name: votes.get(name, 0)) if candidates else None

    def _join_result(self, group: Group, member: Member) -> JoinResult:
        members = []
        if member.member_id == group.leader_id:
            members = [
                (other.member_id, other.group_instance_id, other.metadata_for(group.protocol_name))
                for other in group.members.values()
            ]
        return JoinResult(
            errors.NONE,
            member.member_id,
            group.generation,
            group.protocol_type,
            group.protocol_name,
            group.leader_id or "",
            members,
        )

    # ---- SyncGroup / Heartbeat / LeaveGroup ---------------------------------------------
    def sync(
        self, group_id: str, generation: int, member_id: str, assignments: dict[str, bytes]
    ) -> SyncResult | asyncio.Future:
        group = self.groups.get(group_id)
        member = group.members.get(member_id) if group else None
        if group is None or member is None:
            return SyncResult(errors.UNKNOWN_MEMBER_ID)
        if generation != group.generation:
            return SyncResult(errors.ILLEGAL_GENERATION)
        if group.state is GroupState.PREPARING_REBALANCE:
            return SyncResult(errors.REBALANCE_IN_PROGRESS)
        self._touch(group, member)
        if group.state is GroupState.STABLE:
            return SyncResult(errors.NONE, member.assignment, group.protocol_type, group.protocol_name)
        if member.sync_future is not None and not member.sync_future.done():
            member.sync_future.set_result(SyncResult(errors.REBALANCE_IN_PROGRESS))
        member.sync_future = self._loop.create_future()
        future = member.sync_future
        if member_id == group.leader_id:
            for other in group.members.values():
                other.assignment = assignments.get(other.member_id, b"")
            group.state = GroupState.STABLE
            logger.info("group %s: generation %d stable", group_id, group.generation)
            for other in group.members.values():
                if other.sync_future is not None and not other.sync_future.done():
                    other.sync_future.set_result(
                        SyncResult(errors.NONE, other.assignment, group.protocol_type, group.protocol_name)
                    )
                other.sync_future = None
        return future

    def heartbeat(self, group_id: str, generation: int, member_id: str) -> int:
        group = self.groups.get(group_id)
        member = group.members.get(member_id) if group else None
        if group is None or member is None:
            return errors.UNKNOWN_MEMBER_ID
        if generation != group.generation:
            return errors.ILLEGAL_GENERATION
        self._touch(group, member)
        if group.state is GroupState.PREPARING_REBALANCE:
            return errors.REBALANCE_IN_PROGRESS
        return errors.NONE

    def leave(
        self, group_id: str, members: list[tuple[str, str | None]]
    ) -> list[tuple[str, str | None, int]]:
        group = self.groups.get(group_id)
        results = []
        removed = False
        for member_id, group_instance_id in members:
            member = group.members.get(member_id) if group else None
            if member is None and group is not None and group_instance_id is not None:
                member = next(
                    (
                        candidate
                        for candidate in group.members.values()
                        if candidate.group_instance_id == group_instance_id
                    ),
                    None,
                )
            if group is not None and member_id in group.pending_member_timers:
                group.pending_member_timers.pop(member_id).cancel()
                results.append((member_id, group_instance_id, errors.NONE))
                continue
            if member is None or group is None:
                results.append((member_id, group_instance_id, errors.UNKNOWN_MEMBER_ID))
                continue
            logger.info("group %s: member %s leaves", group_id, member.member_id)
            self._remove_member(group, member)
            removed = True
            results.append((member.member_id, group_instance_id, errors.NONE))
        if removed and group is not None:
            self._after_membership_loss(group, "member left")
        return results

    def _after_membership_loss(self, group: Group, reason: str) -> None:
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(group, reason)
        self._maybe_complete_join(group)

    def _remove_member(self, group: Group, member: Member) -> None:
        group.members.pop(member.member_id, None)
        if member.expiry_timer is not None:
            member.expiry_timer.cancel()
            member.expiry_timer = None
        for future, result in (
            (member.join_future, JoinResult(errors.UNKNOWN_MEMBER_ID, member.member_id)),
            (member.sync_future, SyncResult(errors.UNKNOWN_MEMBER_ID)),
        ):
            if future is not None and not future.done():
                future.set_result(result)
        if group.leader_id == member.member_id:
            group.leader_id = None

    def _touch(self, group: Group, member: Member) -> None:
        member.deadline = time.monotonic() + member.session_timeout_ms / 1000
        if member.expiry_timer is None:
            member.expiry_timer = self._loop.call_at(
                self._loop.time() + member.session_timeout_ms / 1000, self._check_expiry, group, member
            )

    def _check_expiry(self, group: Group, member: Member) -> None:
        member.expiry_timer = None
        if group.members.get(member.member_id) is not member or member.awaiting_join:
            return
        remaining = member.deadline - time.monotonic()
        if remaining > 0:
            member.expiry_timer = self._loop.call_later(remaining, self._check_expiry, group, member)
            return
        logger.info(
            "group %s: member %s expired after %d ms without a heartbeat",
            group.group_id,
            member.member_id,
            member.session_timeout_ms,
        )
        self._remove_member(group, member)
        self._after_membership_loss(group, f"member {member.member_id} session expired")

    def _expire_pending_member(self, group: Group, member_id: str) -> None:
        if group.pending_member_timers.pop(member_id, None) is not None:
            self._maybe_complete_join(group)

    # ---- offsets ------------------------------------------------------------------------
    def commit_offsets(
        self,
        group_id: str,
        generation: int,
        member_id: str,
        offsets: list[tuple[str, int, int, str | None, int]],
    ) -> int:
        if not group_id:
            return errors.INVALID_GROUP_ID
        group = self.groups.setdefault(group_id, Group(group_id))
        if generation < 0 and not member_id:
            # A standalone consumer (assign(), not subscribe()) may commit to an idle group.
            if group.members:
                return errors.UNKNOWN_MEMBER_ID
        else:
            member = group.members.get(member_id)
            if member is None:
                return errors.UNKNOWN_MEMBER_ID
            if generation != group.generation:
                return errors.ILLEGAL_GENERATION
            if group.state is GroupState.COMPLETING_REBALANCE:
                return errors.REBALANCE_IN_PROGRESS
            self._touch(group, member)
        self.offsets.commit(group_id, offsets)
        return errors.NONE

    def check_member(self, group_id: str, generation: int, member_id: str) -> int:
        """Whether ``member_id`` of ``generation`` is a current member (transactional commits)."""
        group = self.groups.get(group_id)
        if group is None or member_id not in group.members:
            return errors.UNKNOWN_MEMBER_ID
        if generation != group.generation:
            return errors.ILLEGAL_GENERATION
        return errors.NONE

    def fetch_offsets(
        self, group_id: str, partitions: list[tuple[str, int]] | None
    ) -> list[tuple[str, int, CommittedOffset | None]]:
        committed = self.offsets.offsets.get(group_id, {})
        if partitions is None:
            return [(topic, partition, value) for (topic, partition), value in sorted(committed.items())]
        return [(topic, partition, committed.get((topic, partition))) for topic, partition in partitions]

    # ---- admin --------------------------------------------------------------------------
    def describe(self, group_id: str) -> Group | None:
        return self.groups.get(group_id)

    def delete_group(self, group_id: str) -> int:
        group = self.groups.get(group_id)
        if group is None:
            return errors.GROUP_ID_NOT_FOUND
        if group.members or group.state not in (GroupState.EMPTY, GroupState.DEAD):
            return errors.NON_EMPTY_GROUP
        del self.groups[group_id]
        self.offsets.delete_group(group_id)
        logger.info("group %s deleted", group_id)
        return errors.NONE

    def close(self) -> None:
        for group in self.groups.values():
            if group.rebalance_timer is not None:
                group.rebalance_timer.cancel()
            for timer in group.pending_member_timers.values():
                timer.cancel()
            for member in group.members.values():
                if member.expiry_timer is not None:
                    member.expiry_timer.cancel()
                for future in (member.join_future, member.sync_future):
                    if future is not None and not future.done():
                        with contextlib.suppress(asyncio.InvalidStateError):
                            future.cancel()
        self.offsets.close()
