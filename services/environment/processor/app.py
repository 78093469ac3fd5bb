"""``madina service environment-processor``: the faust worker behind environment alerts.

One agent reads the three observation topics and the station clock ticks (all keyed and
partitioned by station), keeps each station's state in a changelogged faust Table written once
per record, and publishes alert transitions, AQI, KPIs and station status. faust's per-record
cost is paid once per *batch* of observations, which is what lets one worker keep up with
thousands of observations per second (see bench/environment).

Delivery: faust is at-least-once. A record is re-applied only if the stored state does not
already contain it (offset guard), and an alert transition already on ``alerts.v1`` is not
published again, nor waited for: the state carries unacknowledged alerts in an outbox that a
new owner publishes after a restart or rebalance (madina.streams.ExactlyOnceAlerts). So a kill -9
anywhere yields each alert revision exactly once.

Poison: a record that does not decode, is not the station's under its own key, carries times or
numbers no domain value holds, or is dated outside the event-time bounds of this process's clock
(services.environment.domain.eventtime, the rule the ingest API applies) goes to the topic's
``.dlq`` with the reason, before it can touch a station's state; the agent goes on.
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime
from typing import Any

import faust
from faust.web import Request, Response, View

from madina.bus.alert_events import timestamp
from madina.bus.codec import InvalidRecord, encode, standard_headers
from madina.bus.producer import dead_letter_headers
from madina.bus.topics import TopicSpec
from madina.observability.metrics import BUS_METRICS, metrics_response
from madina.streams import ExactlyOnceAlerts, create_stream_app, run_worker
from madina_proto.environment.v1 import station_pb2
from services.environment.convert import observation_to_pb
from services.environment.domain.evaluator import EvaluatorConfig
from services.environment.domain.profiles import load_profiles, select_rules
from services.environment.domain.stations import Station, load_stations
from services.environment.processor.station_stream import (
    Outputs,
    StoredState,
    apply_batch,
    apply_tick,
    decode_input,
    source_partitions,
)
from services.environment.settings import EnvironmentSettings
from services.environment.topics import OBSERVATION_TOPICS, PROCESSOR_INPUTS, STATION_TICKS

log = logging.getLogger(__name__)
SOURCE = "environment-processor"
APP_ID = "madina-environment-processor"


def create_app(settings: EnvironmentSettings) -> faust.App:
    stations: dict[str, Station] = {
        s.id: s for s in load_stations(settings.environment_stations_file, serving=settings.cities)
    }
    profiles = load_profiles(settings.environment_extra_profile_files)
    rules = select_rules(profiles, settings.environment_profiles)
    config = EvaluatorConfig(event_time_bounds=settings.event_time_bounds())
    specs: dict[str, TopicSpec] = {spec.name: spec for spec in PROCESSOR_INPUTS}

    app = create_stream_app(
        APP_ID, settings, web_port=settings.environment_processor_port, web_host=settings.bind_host
    )
    source = app.topic(*specs, key_serializer="raw", value_serializer="raw", partitions=settings.topic_partitions)
    # Keys and values use the app's default JSON serializer: state is plain dicts by design.
    table = app.Table("station-state", default=None, partitions=settings.topic_partitions)
    sinks = {}

    def sink(spec: TopicSpec) -> faust.TopicT:
        if spec.name not in sinks:
            sinks[spec.name] = app.topic(spec.name, key_serializer="raw", value_serializer="raw")
        return sinks[spec.name]

    async def dead_letter(spec: TopicSpec, message: Any, reason: str, value: bytes | None = None) -> None:
        headers = dead_letter_headers(spec, message.headers, reason, message.partition, message.offset)
        await (await sink(spec.dead_letter).send(
            key=message.key, value=message.value if value is None else value, headers=headers))

    alerts = ExactlyOnceAlerts(
        app, table, domain="environment", source=SOURCE, bootstrap=settings.bootstrap_servers,
        input_topics=specs, outbox_of=lambda value: value.get("outbox"), partitions_of=source_partitions,
    )

    async def publish(outputs: Outputs, stored: StoredState, spec: TopicSpec, message: Any) -> None:
        await alerts.publish(stored.outbox, outputs.alerts)
        for out_spec, key, out in outputs.records:
            # Status, AQI and KPI records are snapshots: faust flushes them before it commits, and a
            # replay re-sends them; nothing waits for their acknowledgement.
            await sink(out_spec).send(key=key.encode(), value=encode(out), headers=standard_headers(out_spec, SOURCE))
        for rejection in outputs.rejected:
            single = observation_to_pb(rejection.observation)
            batch = spec.message_type(station_id=rejection.observation.station_id, observations=[single])
            await dead_letter(spec, message, f"{rejection.code}: {rejection.detail}", batch.SerializeToString())

    # The table holds plain dicts (that is what its changelog carries); decoding one costs more than
    # evaluating a batch, so the object behind the dict we last wrote is kept and reused while the
    # table still holds that very dict. Recovery or a rebalance puts other dicts there: decode again.
    decoded_states: dict[str, tuple[Any, StoredState]] = {}

    def _stored_state(station_id: str) -> StoredState:
        current = table.get(station_id)
        cached = decoded_states.pop(station_id, None)
        if cached is not None and current is not None and cached[0] is current:
            return cached[1]
        return StoredState.from_dict(current, station_id)

    @app.agent(source)
    async def process(stream: faust.StreamT) -> None:
        await alerts.start()
        async for event in stream.events():
            message = event.message
            await alerts.take_over_if_reassigned()
            spec = specs[message.topic]
            BUS_METRICS.consumed.labels(spec.name).inc()
            try:
                decoded, station = decode_input(spec, message.key, message.value, message.headers, stations)
            except InvalidRecord as error:
                await dead_letter(spec, message, str(error))
                continue
            station_id = station.id
            stored = _stored_state(station_id)
            if stored.already_applied(message.topic, message.partition, message.offset):
                log.info("record already in the stored state, skipped", extra={
                    "topic": message.topic, "partition": message.partition, "offset": message.offset,
                    "station_id": station_id})
                continue
            if os.environ.get("MADINA_DEBUG_TRACE"):
                log.info("apply", extra={"topic": message.topic, "partition": message.partition,
                                         "offset": message.offset, "station_id": station_id,
                                         "prev": dict(stored.applied_offsets)})
            try:
                now = datetime.now(UTC)
                if spec is STATION_TICKS:
                    outputs = apply_tick(stored, decoded, station, config, now)
                else:
                    outputs = apply_batch(stored, decoded, station, rules, config, now)
            except Exception as error:
                # apply_* raise before they change ``stored``; anything but InvalidRecord is a bug
                # this record found, logged in full, and the record is parked rather than retried.
                if not isinstance(error, InvalidRecord):
                    log.exception("processing a record failed", extra={"topic": spec.name, "station_id": station_id})
                    decoded_states.pop(station_id, None)
                await dead_letter(spec, message, str(error) if isinstance(error, InvalidRecord) else repr(error))
                continue
            await publish(outputs, stored, spec, message)
            stored.mark_applied(message.topic, message.partition, message.offset)
            value = stored.to_dict()
            table[station_id] = value
            decoded_states[station_id] = (value, stored)

    @app.timer(interval=settings.environment_tick_interval_s, on_leader=True)
    async def tick_stations() -> None:
        now = timestamp(datetime.now(UTC))
        ticks = sink(STATION_TICKS)
        for station_id in stations:
            tick = station_pb2.StationClockTick(station_id=station_id, tick_time=now)
            await ticks.send(key=station_id.encode(), value=encode(tick),
                             headers=standard_headers(STATION_TICKS, SOURCE))

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            ready = app.rebalancing is False and process.started if hasattr(process, "started") else True
            return self.json({"status": "ok" if ready else "starting", "ledger_alerts": len(alerts.ledger)},
                             status=200 if ready else 503)

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            body, content_type = metrics_response()
            return self.bytes(body, content_type=content_type.split(";")[0])

    return app


def main() -> int:
    from madina.observability import configure_logging
    from madina.settings import load_settings

    settings = load_settings(EnvironmentSettings)
    configure_logging(SOURCE, settings.log_level, settings.log_format)
    asyncio.run(_ensure_topics(settings))
    app = create_app(settings)
    run_worker(app, settings)
    return 0


async def _ensure_topics(settings: EnvironmentSettings) -> None:
    from madina.bus import ensure_topics
    from services.environment.topics import ALL

    await ensure_topics(settings.bootstrap_servers, ALL, default_partitions=settings.topic_partitions,
                        replication_factor=settings.topic_replication_factor)


__all__ = ["OBSERVATION_TOPICS", "create_app", "main"]
