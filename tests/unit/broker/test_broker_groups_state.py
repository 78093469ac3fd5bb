"""The group coordinator's state machine, driven directly without a network."""

from __future__ import annotations

import asyncio

from madina.broker import errors
from madina.broker.groups import GroupCoordinator, GroupState, JoinResult, OffsetStore

PROTOCOLS = [("range", b"meta-range"), ("roundrobin", b"meta-rr")]


def coordinator() -> GroupCoordinator:
    return GroupCoordinator(OffsetStore(None), min_session_timeout_ms=100)


def join(
    coordinator: GroupCoordinator,
    member_id: str = "",
    session_ms: int = 300,
    rebalance_ms: int = 300,
    protocols=PROTOCOLS,
    version4: bool = True,
):
    return coordinator.join(
        "g",
        member_id,
        None,
        "client",
        "host",
        session_ms,
        rebalance_ms,
        "consumer",
        protocols,
        require_known_member_id=version4,
    )


async def settle(result):
    return await result if isinstance(result, asyncio.Future) else result


async def joined_member(coordinator: GroupCoordinator, **options) -> JoinResult:
    first = join(coordinator, **options)
    assert isinstance(first, JoinResult) and first.error == errors.MEMBER_ID_REQUIRED
    result = join(coordinator, first.member_id, **options)
    return await result if isinstance(result, asyncio.Future) else result


async def test_member_id_required_then_single_member_becomes_leader_and_stable():
    groups = coordinator()
    result = await joined_member(groups)
    assert result.error == errors.NONE and result.generation == 1 and result.leader == result.member_id
    assert result.members == [(result.member_id, None, b"meta-range")]
    synced = groups.sync("g", 1, result.member_id, {result.member_id: b"assignment"})
    assert (await synced).assignment == b"assignment"
    assert groups.groups["g"].state is GroupState.STABLE
    assert groups.heartbeat("g", 1, result.member_id) == errors.NONE


async def test_second_member_triggers_rebalance_seen_on_heartbeat():
    groups = coordinator()
    leader = await joined_member(groups)
    await groups.sync("g", 1, leader.member_id, {})
    pending = join(groups)
    second = join(groups, pending.member_id)
    assert groups.heartbeat("g", 1, leader.member_id) == errors.REBALANCE_IN_PROGRESS
    rejoin = join(groups, leader.member_id)
    leader_result, follower_result = await asyncio.gather(rejoin, second)
    assert leader_result.generation == follower_result.generation == 2
    assert len(leader_result.members) == 2 and follower_result.members == []
    leader_sync = groups.sync(
        "g", 2, leader.member_id, {leader.member_id: b"a", follower_result.member_id: b"b"}
    )
    follower_sync = groups.sync("g", 2, follower_result.member_id, {})
    assert [(await settle(leader_sync)).assignment, (await settle(follower_sync)).assignment] == [b"a", b"b"]
    assert groups.heartbeat("g", 1, leader.member_id) == errors.ILLEGAL_GENERATION


async def test_member_that_stops_heartbeating_is_evicted_and_survivor_rebalances():
    groups = coordinator()
    slow = {"rebalance_ms": 3000}
    first = await joined_member(groups, **slow)
    second_join = join(groups, join(groups, **slow).member_id, **slow)
    first_again = await join(groups, first.member_id, **slow)
    second = await second_join
    await asyncio.gather(
        settle(groups.sync("g", 2, second.member_id, {})),
        settle(groups.sync("g", 2, first_again.member_id, {})),
    )
    for _ in range(6):  # only the first member keeps heartbeating
        await asyncio.sleep(0.1)
        groups.heartbeat("g", 2, first.member_id)
    assert second.member_id not in groups.groups["g"].members
    assert groups.heartbeat("g", 2, first.member_id) == errors.REBALANCE_IN_PROGRESS
    survivor = await join(groups, first.member_id, **slow)
    assert survivor.generation == 3 and [member[0] for member in survivor.members] == [first.member_id]


async def test_members_that_do_not_rejoin_within_the_rebalance_timeout_are_dropped():
    groups = coordinator()
    first = await joined_member(groups, rebalance_ms=200)
    await groups.sync("g", 1, first.member_id, {})
    newcomer = join(groups, join(groups).member_id, rebalance_ms=200)
    result = await asyncio.wait_for(newcomer, 2)
    assert result.generation == 2 and result.leader == result.member_id
    assert first.member_id not in groups.groups["g"].members


async def test_leave_group_rebalances_and_an_empty_group_accepts_simple_commits():
    groups = coordinator()
    member = await joined_member(groups)
    await groups.sync("g", 1, member.member_id, {})
    assert groups.commit_offsets("g", 1, member.member_id, [("t", 0, 5, "m", -1)]) == errors.NONE
    assert groups.commit_offsets("g", -1, "", [("t", 0, 6, None, -1)]) == errors.UNKNOWN_MEMBER_ID
    assert groups.leave("g", [(member.member_id, None)]) == [(member.member_id, None, errors.NONE)]
    assert groups.groups["g"].state is GroupState.EMPTY
    assert groups.commit_offsets("g", -1, "", [("t", 0, 6, None, -1)]) == errors.NONE
    assert groups.fetch_offsets("g", None)[0][2].offset == 6
    assert groups.delete_group("g") == errors.NONE
    assert groups.fetch_offsets("g", [("t", 0)]) == [("t", 0, None)]


async def test_protocol_is_chosen_among_those_every_member_supports():
    groups = coordinator()
    first = join(groups, version4=False, protocols=[("range", b"r"), ("roundrobin", b"rr")])
    result = await first
    assert result.protocol_name == "range"
    await groups.sync("g", 1, result.member_id, {})
    incompatible = join(groups, version4=False, protocols=[("sticky", b"s")])
    assert incompatible.error == errors.INCONSISTENT_GROUP_PROTOCOL


async def test_offsets_survive_in_the_json_lines_file(tmp_path):
    store = OffsetStore(str(tmp_path))
    store.load()
    store.commit("g", [("t", 0, 10, "meta", 3), ("t", 1, 20, None, -1)])
    store.commit("g", [("t", 0, 11, None, -1)])
    store.forget_topic("gone")
    store.close()
    reloaded = OffsetStore(str(tmp_path))
    reloaded.load()
    assert {key: value.offset for key, value in reloaded.offsets["g"].items()} == {("t", 0): 11, ("t", 1): 20}
    reloaded.close()
