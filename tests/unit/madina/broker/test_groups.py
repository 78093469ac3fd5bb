"""The group coordinator's state machine, driven directly without a network."""

from __future__ import annotations

import asyncio

from madina.broker import errors
from madina.broker.groups import GroupCoordinator, GroupState, JoinResult, OffsetStore

PROTOCOLS = [("range", b"meta-range"), ("roundrobin", b"meta-rr")]


def coordinator(initial_delay_ms: int = 0) -> GroupCoordinator:
    # Most tests here are about what follows the first generation; the initial delay has its own.
    return GroupCoordinator(
        OffsetStore(None), min_session_timeout_ms=100, initial_rebalance_delay_ms=initial_delay_ms
    )


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


def _join_new_member(groups: GroupCoordinator, **options) -> asyncio.Future:
    """Both steps of a KIP-394 join; the answer is the parked JoinGroup future."""
    pending = join(groups, **options)
    assert isinstance(pending, JoinResult) and pending.error == errors.MEMBER_ID_REQUIRED
    parked = join(groups, pending.member_id, **options)
    assert isinstance(parked, asyncio.Future)
    return parked


async def test_a_lone_first_member_waits_out_the_initial_delay_though_every_known_member_has_joined():
    groups = coordinator(initial_delay_ms=200)
    started = asyncio.get_running_loop().time()
    first = _join_new_member(groups, rebalance_ms=5000)
    await asyncio.sleep(0.15)
    assert not first.done() and groups.groups["g"].state is GroupState.PREPARING_REBALANCE
    result = await asyncio.wait_for(first, 2)
    elapsed = asyncio.get_running_loop().time() - started
    assert result.generation == 1 and 0.2 <= elapsed < 0.38  # one extension would end at 0.4


async def test_each_member_new_during_the_initial_delay_extends_it_and_all_share_generation_one():
    groups = coordinator(initial_delay_ms=200)
    loop = asyncio.get_running_loop()
    started = loop.time()
    first = _join_new_member(groups, rebalance_ms=5000)
    await asyncio.sleep(0.1)
    second = _join_new_member(groups, rebalance_ms=5000)
    await asyncio.sleep(0.2)  # t=0.3: the first delay ended at 0.2 and was extended to 0.4
    assert not first.done()
    third = _join_new_member(groups, rebalance_ms=5000)
    results = await asyncio.wait_for(asyncio.gather(first, second, third), 3)
    elapsed = loop.time() - started
    assert 0.6 <= elapsed < 0.78  # extended again at 0.4, for the third member
    assert {result.generation for result in results} == {1}
    assert len(results[0].members) == 3


async def test_initial_delay_extensions_stop_at_the_first_members_rebalance_timeout():
    groups = coordinator(initial_delay_ms=200)
    loop = asyncio.get_running_loop()
    started = loop.time()
    first = _join_new_member(groups, rebalance_ms=500)

    async def keep_joining() -> None:
        while True:
            await asyncio.sleep(0.1)
            _join_new_member(groups, rebalance_ms=500)

    joiner = asyncio.create_task(keep_joining())
    try:
        result = await asyncio.wait_for(first, 3)
    finally:
        joiner.cancel()
    assert result.generation == 1 and len(result.members) >= 4
    # Uncapped, the member joining every 0.1 s would keep extending it past the 3 s wait.
    assert 0.5 <= loop.time() - started < 1.0


async def test_an_initial_delay_of_zero_lets_the_first_member_form_a_generation_alone():
    groups = coordinator(initial_delay_ms=0)
    first = _join_new_member(groups, rebalance_ms=5000)
    assert first.done() and first.result().generation == 1
    second = _join_new_member(groups, rebalance_ms=5000)
    assert not second.done() and groups.groups["g"].state is GroupState.PREPARING_REBALANCE


async def test_only_rebalances_out_of_an_empty_group_wait_the_initial_delay():
    groups = coordinator(initial_delay_ms=300)
    loop = asyncio.get_running_loop()
    leader = await asyncio.wait_for(_join_new_member(groups, rebalance_ms=5000), 2)
    await settle(groups.sync("g", 1, leader.member_id, {}))

    started = loop.time()
    newcomer = _join_new_member(groups, rebalance_ms=5000)
    rejoined = join(groups, leader.member_id, rebalance_ms=5000)
    results = await asyncio.wait_for(asyncio.gather(rejoined, newcomer), 2)
    assert {result.generation for result in results} == {2}
    assert loop.time() - started < 0.25

    groups.leave("g", [(result.member_id, None) for result in results])
    assert groups.groups["g"].state is GroupState.EMPTY
    started = loop.time()
    again = await asyncio.wait_for(_join_new_member(groups, rebalance_ms=5000), 2)
    assert again.generation == 4 and loop.time() - started >= 0.3
