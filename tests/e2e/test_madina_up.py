"""`madina up` (what `make run` runs): the whole city comes up healthy, survives a poison record on
every topic a Madina process consumes, and its simulated alerts reach the dashboard API.

Run on the embedded broker and on Apache Kafka (`madina up --kafka apache`): the same ingest ->
faust processor -> alerts.v1 -> operations path, with nothing but the broker changed.

The poison is one record per consumed topic that once stopped a service or corrupted its state (a
timestamp no datetime holds, a reading dated year 9000, a forged tick, a headerless batch of
another kind, a status and a KPI that cannot be served), sent straight to the broker as soon as
the city is up. Every service must stay healthy with no restart, each poison record must be
dead-lettered, and the simulated city's alerts and indicators must still reach the operations
API. One city boot serves both checks: booting the city is most of the test's time.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from aiokafka import AIOKafkaProducer
from google.protobuf.message import Message

from madina.bus.codec import standard_headers
from madina.bus.topics import ALERT_ACTIONS, ALERTS, KPIS, TopicSpec
from madina.devservers.apache_kafka import KafkaUnavailable, ensure_artifacts
from madina.devservers.ports import free_port
from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.environment.v1 import observations_pb2, station_pb2
from madina_proto.kpis.v1 import kpis_pb2
from services.environment.domain.measurands import StationKind
from services.environment.domain.stations import load_stations
from services.environment.topics import AIR_QUALITY, NOISE, STATION_STATUS, STATION_TICKS, WATER_QUALITY
from tests.support.processor_kit import read_all

READY_BANNER = "Madina is up."
FAR_FUTURE_S = 10**12
# Checked throughout the wait for alerts (the poison's consumers and the dashboard API) ...
POISONED_SERVICES = ("ENVIRONMENT_HTTP_PORT", "ENVIRONMENT_PROCESSOR_PORT", "OPERATIONS_HTTP_PORT")
# ... and every HTTP service at the end, after SIGHUP.
HTTP_SERVICES = (*POISONED_SERVICES, "ENERGY_HTTP_PORT", "ENERGY_PROCESSOR_PORT", "ENERGY_PV_PROCESSOR_PORT")


def _get(url: str, token: str) -> dict:  # type: ignore[type-arg]
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def _poison() -> list[tuple[TopicSpec, str, Message, bool]]:
    """(topic, key, message, with content-type header) for every topic a Madina process reads."""
    stations = [s for s in load_stations() if s.city == "casablanca"]
    air = next(s.id for s in stations if StationKind.AIR in s.kinds)
    water = next(s.id for s in stations if StationKind.WATER in s.kinds)
    noisy = next(s.id for s in stations if StationKind.NOISE in s.kinds)
    year_9000 = observations_pb2.AirQualityObservedBatch(station_id=air)
    year_9000.observations.add(station_id=air, pm25_ugm3=10.0).observe_time.FromDatetime(
        datetime(9000, 1, 1, tzinfo=UTC)
    )
    beyond_water = observations_pb2.WaterQualityObservedBatch(station_id=water)
    beyond_water.observations.add(station_id=water, ph=7.0).observe_time.seconds = FAR_FUTURE_S
    noise_as_air = observations_pb2.NoiseObservedBatch(station_id=noisy)
    noise_as_air.observations.add(station_id=noisy, laeq_db=150.0).observe_time.FromDatetime(datetime.now(UTC))
    noise_past = observations_pb2.NoiseObservedBatch(station_id=noisy)
    noise_past.observations.add(station_id=noisy, laeq_db=50.0).observe_time.FromDatetime(
        datetime(1900, 1, 1, tzinfo=UTC)
    )
    tick = station_pb2.StationClockTick(station_id=water)
    tick.tick_time.FromDatetime(datetime(8999, 1, 1, tzinfo=UTC))
    status = station_pb2.StationStatusChanged()
    status.status.station.station_id = air
    status.status.last_observe_time.seconds = FAR_FUTURE_S
    alert = alerts_pb2.AlertEvent(
        alert_id="poison-alert",
        revision=1,
        domain="environment",
        severity=alerts_pb2.SEVERITY_MAJOR,
        state=alerts_pb2.ALERT_STATE_RAISED,
    )
    alert.event_time.seconds = FAR_FUTURE_S
    action = alerts_pb2.AlertAction(
        action_id="poison-action",
        alert_id="poison-alert",
        action_type=alerts_pb2.ALERT_ACTION_TYPE_ACKNOWLEDGE,
        actor="x",
    )
    action.action_time.seconds = -FAR_FUTURE_S
    kpi = kpis_pb2.KpiObserved(domain="environment", kpi_id="aqi", value=float("nan"))
    kpi.entity.entity_id = air
    kpi.observe_time.seconds = FAR_FUTURE_S
    return [
        (AIR_QUALITY, air, year_9000, True),
        (AIR_QUALITY, noisy, noise_as_air, False),
        (WATER_QUALITY, water, beyond_water, True),
        (NOISE, noisy, noise_past, True),
        (STATION_TICKS, water, tick, True),
        (STATION_STATUS, air, status, True),
        (ALERTS, alert.alert_id, alert, True),
        (ALERT_ACTIONS, action.alert_id, action, True),
        (KPIS, f"aqi/{air}", kpi, True),
    ]


async def _produce_poison(bootstrap: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for spec, key, message, typed in _poison():
            headers = standard_headers(spec, "poison") if typed else []
            await producer.send_and_wait(spec.name, message.SerializeToString(), key=key.encode(), headers=headers)
    finally:
        await producer.stop()


def _healthy(ports: dict[str, int], names: tuple[str, ...]) -> None:
    for name in names:
        with urllib.request.urlopen(f"http://127.0.0.1:{ports[name]}/healthz", timeout=5) as response:
            assert response.status == 200, name


# The city's start-up is CPU-bound: in a parallel run on two cores it takes longer than alone.
BOOT_TIMEOUT_S = 180


@pytest.mark.timeout(BOOT_TIMEOUT_S + 90 + 60 + 60)  # boot, alerts, the checks, the orderly stop
@pytest.mark.parametrize("kafka", ["embedded", "apache"])
def test_madina_up_reaches_healthy_survives_poison_records_and_simulated_alerts_reach_the_dashboard_api(
    tmp_path: Path, kafka: str
) -> None:
    if kafka == "apache":
        try:
            ensure_artifacts()
        except KafkaUnavailable as error:
            pytest.skip(f"Apache Kafka not available: {error}")
    ports = {
        name: free_port()
        for name in (
            "EMBEDDED_BROKER_PORT",
            "ENVIRONMENT_HTTP_PORT",
            "ENVIRONMENT_GRPC_PORT",
            "ENVIRONMENT_PROCESSOR_PORT",
            "ENERGY_HTTP_PORT",
            "ENERGY_GRPC_PORT",
            "ENERGY_PROCESSOR_PORT",
            "ENERGY_PV_PROCESSOR_PORT",
            "ENERGY_DISTRICT_PROCESSOR_PORT",
            "MOBILITY_HTTP_PORT",
            "MOBILITY_GRPC_PORT",
            "MOBILITY_PROCESSOR_PORT",
            "WASTE_HTTP_PORT",
            "WASTE_GRPC_PORT",
            "WASTE_PROCESSOR_PORT",
            "WASTE_DISTRICT_PROCESSOR_PORT",
            "DEVICES_GATEWAY_PORT",
            "DEVICES_MQTT_PORT",
            "OPERATIONS_HTTP_PORT",
            "OPERATIONS_GRPC_PORT",
        )  # every port of the city: a default one may be taken by a parallel test
    }
    env = {key: value for key, value in os.environ.items() if not key.startswith("MADINA_")}
    env.update({f"MADINA_{name}": str(port) for name, port in ports.items()})
    env.update(
        {
            "MADINA_DATA_DIR": str(tmp_path / "data"),
            "MADINA_TOPIC_PARTITIONS": "2",
            "MADINA_ENVIRONMENT_TICK_INTERVAL_S": "5",
        }
    )
    console_path = tmp_path / "console.log"
    console = console_path.open("w+")
    city = subprocess.Popen(
        [sys.executable, "-m", "madina", "up", "--city", "casablanca", "--rate", "40", "--kafka", kafka],
        cwd=tmp_path,
        env=env,
        stdout=console,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while READY_BANNER not in console_path.read_text():
            assert city.poll() is None, console_path.read_text()
            assert time.monotonic() < deadline, f"madina up did not come up within {BOOT_TIMEOUT_S} s"
            time.sleep(0.5)
        banner = console_path.read_text()
        operations = f"http://127.0.0.1:{ports['OPERATIONS_HTTP_PORT']}"
        assert f"{operations}/#token=" in banner
        tokens = yaml.safe_load((tmp_path / "data" / "secrets" / "tokens.yaml").read_text())
        assert tokens["operator"] in banner
        assert ("Apache Kafka on" in banner) == (kafka == "apache"), banner

        # Either broker listens on the embedded broker's port.
        bootstrap = f"127.0.0.1:{ports['EMBEDDED_BROKER_PORT']}"
        asyncio.run(_produce_poison(bootstrap))

        # Within a minute the simulated contamination and pollution episode are on the dashboard
        # API, after the poison, with every service up throughout.
        alerts: list[dict] = []  # type: ignore[type-arg]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert city.poll() is None, console_path.read_text()[-3000:]
            _healthy(ports, POISONED_SERVICES)
            alerts = _get(f"{operations}/api/v1/alerts?state=active", tokens["viewer"])["alerts"]
            if any(a["severity"] == "critical" for a in alerts) and len(alerts) >= 3:
                break
            time.sleep(2)
        assert any(a["rule_id"] == "who-water-2022/ecoli" and a["severity"] == "critical" for a in alerts), alerts
        assert "environment" in {a["domain"] for a in alerts}
        assert "poison-alert" not in {a["alert_id"] for a in alerts}
        kpis = _get(f"{operations}/api/v1/kpis", tokens["viewer"])
        assert any(k["kpi_id"] == "aqi" for k in kpis["indicators"])
        for spec in (AIR_QUALITY, WATER_QUALITY, NOISE, STATION_TICKS, ALERTS, ALERT_ACTIONS):
            parked = asyncio.run(read_all(bootstrap, spec.dead_letter.name))
            assert parked, f"the poison on {spec.name} was not dead-lettered"
        assert "restart" not in console_path.read_text().lower(), console_path.read_text()[-3000:]
        # SIGHUP (re-read credentials) reaches the services and stops nothing.
        os.kill(city.pid, signal.SIGHUP)
        time.sleep(2)
        assert city.poll() is None, console_path.read_text()[-3000:]
        _healthy(ports, HTTP_SERVICES)
        assert "restart" not in console_path.read_text(), console_path.read_text()[-3000:]
    finally:
        os.killpg(city.pid, signal.SIGINT)
        try:
            exit_code = city.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(city.pid, signal.SIGKILL)
            raise
    assert exit_code == 0, console_path.read_text()[-3000:]
    assert "madina up: stopped" in console_path.read_text()
