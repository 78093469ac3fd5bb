"""Push withdrawals survive an API restart and cross replicas: what a publisher pushed is on
``mobility.pushed-entities.v1``, which every API process reads at start and follows.

Real HTTP servers and a real broker (a broker of the test's own: the topics are read from their
start); no processor: the withdrawal is checked where the processor would read it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from madina.bus.reader import read_topics
from services.mobility.topics import TRIP_UPDATES, VEHICLE_POSITIONS
from tests.integration.mobility.api_support import MobilityApi, running_mobility_api
from tests.integration.mobility.morning import schedule
from tests.integration.mobility.test_pull_withdrawals import until
from tests.integration.mobility.test_push_withdrawals import _feed, _push, _runs


async def test_an_id_only_deletion_withdraws_what_the_publisher_pushed_before_a_restart_or_to_another_replica(
    broker: str, tmp_path: Path,
) -> None:
    plan = schedule()
    now = datetime.now(UTC).replace(microsecond=0)
    first, second = _runs(plan, now, 2)
    async with running_mobility_api(broker, tmp_path / "before") as api, _client(api) as client:
        assert (await _push(client, api, "operator-feed", _feed(now, [first, second], {})))["trip_updates"] == 2

    async with running_mobility_api(broker, tmp_path / "restarted") as restarted, _client(restarted) as client:
        # A FULL_DATASET header (the protobuf default) naming the entity by id alone, after the restart.
        deletion = _feed(now + timedelta(seconds=10), [], {}, deleted=(f"tu-{first.trip.trip_id}",))
        assert (await _push(client, restarted, "other-operator", deletion))["withdrawn"] == 0  # not its entity
        assert (await _push(client, restarted, "operator-feed", deletion))["withdrawn"] == 1

        async with running_mobility_api(broker, tmp_path / "replica") as replica, _client(replica) as other:
            await _push(other, replica, "operator-feed", _feed(now + timedelta(seconds=20), [], {"BK-E77": second}))

            async def seen_by_the_first_replica() -> bool:
                return "vp-BK-E77" in restarted.runtime.pushed_feed("operator-feed").entities

            await until(seen_by_the_first_replica, "the first replica to read what the second accepted")
            vehicle_gone = _feed(now + timedelta(seconds=30), [], {}, deleted=("vp-BK-E77",))
            assert (await _push(client, restarted, "operator-feed", vehicle_gone))["withdrawn"] == 1

    trip_batches = await read_topics(broker, [TRIP_UPDATES], lambda batch: batch)
    assert [u.trip_id for b in trip_batches for u in b.trip_updates if u.deleted] == [first.trip.trip_id]
    position_batches = await read_topics(broker, [VEHICLE_POSITIONS], lambda batch: batch)
    assert [p.vehicle_id for b in position_batches for p in b.vehicle_positions if p.deleted] == ["BK-E77"]


def _client(api: MobilityApi) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=api.url, timeout=30)
