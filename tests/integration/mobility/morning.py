"""A scripted morning on the Berkane sample feed, as a real publisher would send it, and its oracle.

The script (local times of the most recent weekday at least a day ago, so every time is inside
the processor's event-time bounds): trip 1-0700 drifts late, escalates and recovers; a bus on
1-0720 goes silent mid-trip and comes back; trip 2-0815 is cancelled; trips 1-0800, 1-0820 and
1-0840 run late together (one route alert); two line 1 buses bunch. It also carries one entity
of an unknown trip, which must be dead-lettered while the rest flows.

``morning()`` gives the steps in order: GTFS-Realtime FeedMessages (what POST /v1/gtfs-rt takes)
and route clock ticks (what the processor's timer sends). ``records_of`` turns them into the
processor's input records the way the ingest API does; ``expected_alerts`` is the oracle: the
pure domain (``apply_route_events`` / ``tick_route``) fed the same batches, no broker.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta

from google.transit import gtfs_realtime_pb2 as rt

from services.mobility.api.publisher import feed_batches
from services.mobility.convert import position_from_wire, trip_update_from_wire
from services.mobility.domain.avl import PathIndex
from services.mobility.domain.evaluator import MobilityConfig, RouteState, apply_route_events, tick_route
from services.mobility.domain.gtfs import Schedule, load_feeds
from services.mobility.domain.servicedays import ScheduledRun, TripKey, run_of
from services.mobility.processor.route_stream import tick_message
from services.mobility.settings import MobilityProcessorSettings
from services.mobility.topics import ALL, ROUTE_TICKS, TRIP_UPDATES, VEHICLE_POSITIONS
from tests.support.processor_kit import ProcessorKit, Record

KIT = ProcessorKit(
    "mobility-processor", "MADINA_MOBILITY_PROCESSOR_PORT", ALL,
    env={"MADINA_MOBILITY_TICK_INTERVAL_S": "3600"},  # the script sends its own ticks
)
UNKNOWN_TRIP = "9-9999"
Step = rt.FeedMessage | tuple[str, datetime]  # a feed, or a tick (route id, tick time)


def schedule() -> Schedule:
    return load_feeds(MobilityProcessorSettings().mobility_gtfs_feeds)


def service_day(today: date | None = None) -> date:
    day = (today or datetime.now(UTC).date()) - timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


class _Script:
    def __init__(self, plan: Schedule, day: date) -> None:
        self.schedule = plan
        self.day = day.strftime("%Y%m%d")

    def run(self, trip_id: str) -> ScheduledRun:
        found = run_of(self.schedule, TripKey(trip_id, self.day))
        assert found is not None, trip_id
        return found

    def feed(self, at: datetime) -> rt.FeedMessage:
        feed = rt.FeedMessage()
        feed.header.gtfs_realtime_version = "2.0"
        feed.header.timestamp = int(at.timestamp())
        return feed

    def late(self, feed: rt.FeedMessage, trip_id: str, delay_s: int, vehicle: str, canceled: bool = False) -> None:
        entity = feed.entity.add(id=f"tu-{trip_id}")
        update = entity.trip_update
        update.trip.trip_id, update.trip.start_date = trip_id, self.day
        update.vehicle.id = vehicle
        update.timestamp = feed.header.timestamp
        if canceled:
            update.trip.schedule_relationship = rt.TripDescriptor.CANCELED
            return
        known = trip_id in self.schedule.trips
        stu = update.stop_time_update.add(stop_sequence=self.run(trip_id).trip.stop_times[0].stop_sequence
                                          if known else 1)
        stu.arrival.delay = delay_s
        stu.departure.delay = delay_s

    def at_stop(self, feed: rt.FeedMessage, trip_id: str, vehicle: str, stop_index: int) -> None:
        stop = self.schedule.stops[self.run(trip_id).trip.stop_times[stop_index].stop_id]
        entity = feed.entity.add(id=f"vp-{vehicle}")
        position = entity.vehicle
        position.vehicle.id = vehicle
        position.trip.trip_id, position.trip.start_date = trip_id, self.day
        position.position.latitude, position.position.longitude = stop.lat, stop.lon
        position.timestamp = feed.header.timestamp


def morning(plan: Schedule, day: date) -> list[Step]:
    script = _Script(plan, day)
    steps: list[Step] = []
    first = script.run("1-0700")
    for n, delay in enumerate([60, 400, 420, 700, 720, 650, 100, 90, 80, 60, 50]):
        feed = script.feed(first.start + timedelta(minutes=2 + 2 * n))
        script.late(feed, "1-0700", delay, "BK-E01")
        if n == 3:
            script.late(feed, UNKNOWN_TRIP, 900, "BK-X")  # dead-lettered; the rest of the feed flows
        steps.append(feed)
    silent = script.run("1-0720")
    for minute, stop_index in ((3, 1), (4, 1), (12, 4)):
        feed = script.feed(silent.start + timedelta(minutes=minute))
        script.at_stop(feed, "1-0720", "BK-E02", stop_index)
        steps.append(feed)
        if minute == 4:
            steps.append(("BK-1", silent.start + timedelta(minutes=9)))  # silent 5 min mid-trip
    cancel = script.feed(script.run("2-0815").start - timedelta(minutes=10))
    script.late(cancel, "2-0815", 0, "BK-E20", canceled=True)
    steps.append(cancel)
    leader, follower = script.run("1-0800"), script.run("1-0820")
    for minute in (5, 6):
        feed = script.feed(follower.start + timedelta(minutes=minute))
        script.at_stop(feed, "1-0800", "BK-E03", 4)
        script.at_stop(feed, "1-0820", "BK-E04", 4)
        steps.append(feed)
    last = script.run("1-0840")
    for minute in (2, 3, 4):
        feed = script.feed(last.start + timedelta(minutes=minute))
        for n, trip_id in enumerate(("1-0800", "1-0820", "1-0840")):
            script.late(feed, trip_id, 420, f"BK-E1{n}")
        steps.append(feed)
    steps.append(("BK-1", last.start + timedelta(hours=2)))  # runs over: alerts close
    steps.append(("BK-2", last.start + timedelta(hours=2)))
    assert leader.start < follower.start
    return steps


def records_of(plan: Schedule, steps: list[Step]) -> list[Record]:
    """The processor's input records for ``steps``, keyed by route as the ingest API makes them."""
    records: list[Record] = []
    for step in steps:
        if isinstance(step, tuple):
            route_id, at = step
            records.append((ROUTE_TICKS, route_id, tick_message(route_id, at)))
            continue
        batches = feed_batches(step, plan)
        records += [(TRIP_UPDATES, route_id, batch) for route_id, batch in batches.trip_updates.items()]
        records += [(VEHICLE_POSITIONS, route_id, batch) for route_id, batch in batches.positions.items()]
    return records


def expected_alerts(plan: Schedule, records: list[Record], config: MobilityConfig) -> Counter[tuple[str, int, int]]:
    """The pure domain fed the same batches in the same order: (alert id, revision, state) once each."""
    paths = PathIndex(plan)
    states: dict[str, RouteState] = {}
    expected: Counter[tuple[str, int, int]] = Counter()
    for spec, route_id, message in records:
        state = states.get(route_id) or RouteState.new(route_id)
        if spec is ROUTE_TICKS:
            result = tick_route(state, message.tick_time.ToDatetime(UTC), plan, paths, config)
        elif spec is TRIP_UPDATES:
            events = [trip_update_from_wire(u) for u in message.trip_updates]
            result = apply_route_events(state, events, plan, paths, config)
        else:
            positions = [position_from_wire(p) for p in message.vehicle_positions]
            result = apply_route_events(state, positions, plan, paths, config)
        states[route_id] = result.state
        for transition in result.transitions:
            expected[(transition.alert_id, transition.revision, int(transition.state))] += 1
    return expected


def delay_waves(plan: Schedule, day: date, hours: range = range(7, 12)) -> list[Record]:
    """Trip updates only (one input topic, so the processor sees them in produce order on any
    broker): on every route, each hour, two trips drift late together, escalate and recover, a
    minute apart -- raise, escalate and clear of a trip alert, many times over."""
    script = _Script(plan, day)
    waves: list[Step] = []
    for hour in hours:
        for route_id in sorted(plan.routes):
            trips = sorted((t for t in plan.trips_by_route.get(route_id, ())
                            if t.start_s >= hour * 3600 and run_of(plan, TripKey(t.trip_id, script.day))),
                           key=lambda t: t.start_s)[:2]
            if len(trips) < 2:
                continue
            base = max(script.run(t.trip_id).start for t in trips)
            for n, delay in enumerate([400, 420, 700, 720, 650, 100, 90, 80, 60, 50]):
                feed = script.feed(base + timedelta(minutes=2 + n))
                for index, trip in enumerate(trips):
                    script.late(feed, trip.trip_id, delay + 30 * index, f"V-{trip.trip_id}")
                waves.append(feed)
    return records_of(plan, waves)
