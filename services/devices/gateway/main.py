"""``madina service mqtt-gateway``: MQTT devices and LoRaWAN network servers into every domain's ingest.

The gateway subscribes (QoS 1, persistent session: MQTT 5 ``clean_start=False`` with a session
expiry, or 3.1.1 ``clean_session=False``) to the topic schemes of :mod:`services.devices.domain.topics`
and takes what arrives in batches of up to ``MADINA_DEVICES_BATCH_MAX`` messages:

1. each message is interpreted alone (:func:`services.devices.domain.messages.interpret`) and
   handed to its domain's own parsing and checks (:mod:`.ingest`); a refused one becomes a dead
   letter on ``devices.mqtt-messages.v1.dlq`` (original bytes, MQTT topic, reason);
2. the batch's accepted readings are published through each domain's publisher (one record per
   entity, acks=all), beside the dead letters;
3. only when Kafka has acknowledged all of it are the batch's MQTT PUBLISHes acknowledged
   (paho-mqtt's ``manual_ack``), in the order they arrived.

If Kafka fails, nothing of the batch is acknowledged: the gateway drops the MQTT connection and
reconnects (with backoff), and the broker redelivers the unacknowledged messages to the persistent
session. Delivery is at least once: a reading may reach Kafka twice, and the processors' exactly-once
alert path keeps alerts single. A broker that goes away is reconnected to with exponential backoff.
``/healthz`` (port ``MADINA_DEVICES_GATEWAY_PORT``) answers 200 only when the gateway is connected
and, if it feeds the environment domain, the station-status feed has caught up (the lateness check's
newest observations: the environment API's ``status_feed`` check, on the same
:class:`~services.environment.api.state.StationStatusFeed`); ``/metrics`` serves Prometheus counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import aiomqtt
from aiohttp import web
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from prometheus_client import Counter, Gauge, Histogram

from madina.bus import EventProducer, ensure_topics
from madina.observability import configure_logging, metrics_response
from madina.runtime import run_until_stopped
from madina.settings import load_settings
from services.devices.domain.decoders import PayloadUndecodable
from services.devices.domain.messages import interpret, lorawan_item
from services.devices.domain.registry import DeviceRefused, DeviceRegistry, load_registry
from services.devices.domain.topics import SUBSCRIPTIONS, Scheme, TopicRejected
from services.devices.domain.uplinks import UplinkRejected
from services.devices.gateway.inbox import Inbox
from services.devices.gateway.ingest import INGESTS, DomainData, DomainIngest, kinds
from services.devices.gateway.paho_properties import share_paho_property_tables
from services.devices.settings import DevicesSettings
from services.devices.topics import ALL, HEADER_MQTT_TOPIC, MQTT_MESSAGES
from services.environment.topics import STATION_STATUS

log = logging.getLogger(__name__)

MESSAGES = Counter("madina_devices_mqtt_messages_total", "MQTT messages handled", ["outcome"])
READINGS = Counter("madina_devices_readings_published_total", "Readings published to Kafka", ["domain", "kind"])
CONNECTED = Gauge("madina_devices_mqtt_connected", "1 while the gateway is connected to the MQTT broker")
CONNECTS = Counter("madina_devices_mqtt_connects_total", "Successful MQTT connections (1 + reconnects)")
BATCH_SECONDS = Histogram("madina_devices_batch_seconds", "From a batch's first message to its MQTT acks")

# The reason's first word is its metric label (madina.bus.producer.dead_letter_headers).
_REASON_OF = {
    TopicRejected: "unknown topic", UplinkRejected: "malformed message", DeviceRefused: "device refused",
    PayloadUndecodable: "undecodable payload",
}
STATUS_FEED_WAIT_S = 30  # at start-up, for the environment station-status backlog
SESSION_EXPIRY_S = 7 * 24 * 3600  # how long the broker keeps our queue while we are away (MQTT 5)


def refusal_reason(error: Exception) -> str:
    for kind, label in _REASON_OF.items():
        if isinstance(error, kind):
            return f"{label}: {error}"
    return f"invalid value: {error}"


class MqttGateway:
    def __init__(self, settings: DevicesSettings, registry: DeviceRegistry, producer: EventProducer,
                 data: DomainData | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.producer = producer
        self.data = data or DomainData(cities=settings.cities)
        self.connected = False
        self.last_error = ""
        self.connects = 0

    @property
    def follows_station_status(self) -> bool:
        """Whether the environment ingest's lateness check needs each station's newest observation."""
        return any(entry.domain == "environment" for entry in self.registry.devices.values())

    def load_domain_data(self) -> None:
        """Loads now the entities of every domain the registry's devices feed (a broken seed stops start-up)."""
        used = {(entry.domain, entry.kind) for entry in self.registry.devices.values()}
        for key in used:
            for attribute in INGESTS[key].loads:
                getattr(self.data, attribute)

    # --- MQTT session ---------------------------------------------------------------------------

    def _client(self, inbox: Inbox) -> aiomqtt.Client:
        settings = self.settings
        v5 = settings.devices_mqtt_protocol == "5"
        properties = None
        if v5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = SESSION_EXPIRY_S
            properties.ReceiveMaximum = settings.devices_mqtt_receive_maximum
        client = aiomqtt.Client(
            settings.devices_mqtt_host, settings.devices_mqtt_port,
            username=None if settings.devices_mqtt_anonymous else settings.devices_mqtt_username,
            password=settings.mqtt_password(), identifier=settings.devices_mqtt_client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            clean_session=None if v5 else False, properties=properties,
            # paho refuses clean_start other than its default under 3.1.1, where clean_session=False says it.
            clean_start=False if v5 else MQTT_CLEAN_START_FIRST_ONLY,
            tls_context=settings.mqtt_tls_context(), keepalive=30, timeout=10,
            # aiomqtt makes its message queue with queue_type(maxsize=...): the gateway's inbox instead.
            queue_type=cast(type[asyncio.Queue[aiomqtt.Message]], lambda maxsize: inbox),
        )
        # Without manual acknowledgement paho would PUBACK each message as soon as it is read, before
        # Kafka has it. aiomqtt (2.5.1, as locked) has no public way to it: application-controlled
        # acks are its open issue empicano/aiomqtt#345 (draft PR #346), whose suggested workaround is
        # this one, paho's own public manual_ack_set/ack on the client aiomqtt wraps (client._client).
        # Set before connecting, so messages the broker redelivers at once are covered too.
        client._client.manual_ack_set(True)
        return client

    async def run(self) -> None:
        """Connect, consume, reconnect with exponential backoff, until cancelled."""
        backoff = self.settings.devices_reconnect_min_s
        while True:
            connects = self.connects
            try:
                await self._session()
            except aiomqtt.MqttError as error:
                self.last_error = str(error)
                log.warning("mqtt connection lost", extra={"error": str(error), "retry_in_s": round(backoff, 2)})
            except KafkaUnavailableForBatch as error:
                self.last_error = str(error)
                log.error("kafka refused a batch; reconnecting so the broker redelivers it",
                          extra={"error": str(error), "retry_in_s": round(backoff, 2)})
            finally:
                self.connected = False
                CONNECTED.set(0)
            if self.connects != connects:  # it had connected: start the backoff over
                backoff = self.settings.devices_reconnect_min_s
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.settings.devices_reconnect_max_s)

    async def _session(self) -> None:
        inbox = Inbox()
        async with self._client(inbox) as client:
            self.connected = True
            self.last_error = ""
            CONNECTED.set(1)
            CONNECTS.inc()
            self.connects += 1
            log.info("mqtt connected", extra={"host": self.settings.devices_mqtt_host,
                                              "port": self.settings.devices_mqtt_port})
            connection = asyncio.create_task(self._subscribe_and_watch(client), name="mqtt-connection")
            try:
                while True:
                    batch = await inbox.take(self.settings.devices_batch_max,
                                             self.settings.devices_batch_wait_ms / 1000, connection)
                    await self.handle(batch)
                    for message in batch:  # in arrival order, as MQTT asks of QoS 1 acknowledgements
                        client._client.ack(message.mid, message.qos)  # see _client: aiomqtt has no ack
            finally:
                connection.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await connection

    async def _subscribe_and_watch(self, client: aiomqtt.Client) -> None:
        """Subscribes while watching for the connection's end; returns only by raising what ended it.

        A persistent session's queued messages come before the SUBACK, as many as the broker lets be
        in flight (under 3.1.1 and Mosquitto's max_inflight_messages 0, all of them), so batches are
        handled and acknowledged meanwhile, and the SUBACK is awaited without aiomqtt's 10 s timeout.
        Waiting for it first, a backlog that took longer than 10 s to read was read, dropped unacked
        and redelivered on every reconnect: the gateway never got going."""
        disconnected = asyncio.create_task(_until_disconnected(client))
        subscribing = asyncio.create_task(self._subscribe(client))
        try:
            done, _ = await asyncio.wait({disconnected, subscribing}, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # the end of the connection, or a refused subscription
        finally:
            for task in (disconnected, subscribing):
                task.cancel()
            await asyncio.gather(disconnected, subscribing, return_exceptions=True)

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        group = self.settings.devices_mqtt_shared_group
        for pattern in SUBSCRIPTIONS:
            await client.subscribe(f"$share/{group}/{pattern}" if group else pattern, qos=1, timeout=math.inf)
        log.info("mqtt subscribed", extra={"patterns": len(SUBSCRIPTIONS), "shared_group": group})

    # --- one batch ------------------------------------------------------------------------------

    async def handle(self, batch: Sequence[aiomqtt.Message]) -> None:
        """Publish the batch's readings and dead letters; returns once Kafka acknowledged all of it."""
        started = time.monotonic()
        now = datetime.now(UTC)
        accepted: dict[DomainIngest, list[Any]] = defaultdict(list)
        dead: list[asyncio.Future[Any]] = []
        for message in batch:
            topic = message.topic.value
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            try:
                request = interpret(topic, payload, self.registry, now)
                ingest = INGESTS[(request.device.domain, request.device.kind)]
                body = request.body if request.scheme is Scheme.DIRECT else lorawan_item(request, ingest.entity_field)
                accepted[ingest] += ingest.prepare(self.data, request.device, body,
                                                   self.settings.devices_max_batch_items, now)
                MESSAGES.labels("accepted").inc()
            except ValueError as error:  # every refusal above is a ValueError naming what is wrong
                dead.append(await self._dead_letter(topic, payload, refusal_reason(error)))
            except Exception as error:  # a bug met by one message must not stop every device's readings
                log.exception("message failed unexpectedly; dead-lettered", extra={"mqtt_topic": topic})
                dead.append(await self._dead_letter(topic, payload, f"internal error: {type(error).__name__}"))
        try:
            counts = await asyncio.gather(
                *(ingest.publish(self.data, self.producer, readings) for ingest, readings in accepted.items()),
                *dead)
        except Exception as error:
            raise KafkaUnavailableForBatch(f"{type(error).__name__}: {error}") from error
        for (ingest, _), count in zip(accepted.items(), counts, strict=False):
            READINGS.labels(ingest.domain, ingest.kind).inc(count)
        BATCH_SECONDS.observe(time.monotonic() - started)

    async def _dead_letter(self, topic: str, payload: bytes, reason: str) -> asyncio.Future[Any]:
        MESSAGES.labels("dead_lettered").inc()
        return await self.producer.send_dead_letter(
            MQTT_MESSAGES, key=topic.encode(), value=payload, headers=[(HEADER_MQTT_TOPIC, topic.encode())],
            reason=reason)

    # --- health ---------------------------------------------------------------------------------

    def health(self) -> dict[str, str]:
        """Each readiness check, "ok" when it passes. ``status_feed`` is the environment API's own check
        of the same feed: until its backlog is read, a late environment reading would pass."""
        checks = {"mqtt": "ok" if self.connected else f"disconnected: {self.last_error or 'connecting'}"}
        if self.follows_station_status:
            checks["status_feed"] = "ok" if self.data.station_status.ready.is_set() else "starting"
        return checks


async def _until_disconnected(client: aiomqtt.Client) -> None:
    """Ends only with the connection: every message goes to the gateway's inbox, so client.messages
    never yields one and only raises the MqttError that ended it."""
    async for _ in client.messages:
        raise AssertionError("a message bypassed the gateway's inbox")


class KafkaUnavailableForBatch(RuntimeError):
    """Kafka did not acknowledge a batch; none of its MQTT messages were acknowledged."""


def web_app(gateway: MqttGateway) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        checks = gateway.health()
        ok = all(value == "ok" for value in checks.values())
        return web.json_response({"status": "ok" if ok else "degraded", **checks, "devices": len(gateway.registry)},
                                 status=200 if ok else 503)

    async def metrics(_: web.Request) -> web.Response:
        body, content_type = metrics_response()
        return web.Response(body=body, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


async def serve(settings: DevicesSettings) -> None:
    share_paho_property_tables()
    registry = load_registry(settings.devices_registry_file, kinds())
    producer = EventProducer(settings.bootstrap_servers, source="mqtt-gateway")
    gateway = MqttGateway(settings, registry, producer)
    gateway.load_domain_data()
    follows_stations = gateway.follows_station_status
    await ensure_topics(settings.bootstrap_servers,
                        [*ALL, *(ingest.topic for ingest in INGESTS.values()),
                         *([STATION_STATUS] if follows_stations else [])],
                        default_partitions=settings.topic_partitions,
                        replication_factor=settings.topic_replication_factor)
    # /healthz first: while the status feed's backlog loads it answers 503 with status_feed "starting".
    runner = web.AppRunner(web_app(gateway), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.bind_host, settings.devices_gateway_port)
    await site.start()
    status_feed = None
    try:
        if follows_stations:  # the environment ingest's lateness check needs each station's newest observation
            status_feed = asyncio.create_task(gateway.data.station_status.follow(settings.bootstrap_servers),
                                              name="station-status-feed")
            try:  # read the backlog first, or late readings would pass while it loads
                await asyncio.wait_for(gateway.data.station_status.ready.wait(), STATUS_FEED_WAIT_S)
            except TimeoutError:
                log.warning("station status feed not caught up; late environment readings pass until it is "
                            "(/healthz says status_feed: starting)", extra={"waited_s": STATUS_FEED_WAIT_S})
        await producer.start()
        log.info("mqtt gateway started", extra={"devices": len(registry), "port": settings.devices_gateway_port})
        await gateway.run()
    finally:
        if status_feed is not None:
            status_feed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await status_feed
        await producer.stop()
        await runner.cleanup()


def main() -> int:
    settings = load_settings(DevicesSettings)
    configure_logging("mqtt-gateway", settings.log_level, settings.log_format)
    return run_until_stopped(lambda: serve(settings))
