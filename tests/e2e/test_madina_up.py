"""`madina up` (what `make run` runs): the whole city comes up healthy and alerts reach the dashboard API.

Run on the embedded broker and on Apache Kafka (`madina up --kafka apache`): the same ingest ->
faust processor -> alerts.v1 -> operations path, with nothing but the broker changed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from madina.devservers.apache_kafka import KafkaUnavailable, ensure_artifacts
from madina.devservers.ports import free_port

READY_BANNER = "Madina is up."


def _get(url: str, token: str) -> dict:  # type: ignore[type-arg]
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


@pytest.mark.parametrize("kafka", ["embedded", "apache"])
def test_madina_up_reaches_healthy_and_simulated_alerts_reach_the_dashboard_api(tmp_path: Path, kafka: str) -> None:
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
            "WASTE_HTTP_PORT",
            "WASTE_GRPC_PORT",
            "WASTE_PROCESSOR_PORT",
            "OPERATIONS_HTTP_PORT",
            "OPERATIONS_GRPC_PORT",
        )
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
    console = (tmp_path / "console.log").open("w+")
    city = subprocess.Popen(
        [sys.executable, "-m", "madina", "up", "--city", "casablanca", "--rate", "40", "--kafka", kafka],
        cwd=tmp_path,
        env=env,
        stdout=console,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while READY_BANNER not in Path(console.name).read_text():
            assert city.poll() is None, Path(console.name).read_text()
            assert time.monotonic() < deadline, "madina up did not come up within 120 s"
            time.sleep(0.5)
        banner = Path(console.name).read_text()
        operations = f"http://127.0.0.1:{ports['OPERATIONS_HTTP_PORT']}"
        assert f"{operations}/#token=" in banner
        tokens = yaml.safe_load((tmp_path / "data" / "secrets" / "tokens.yaml").read_text())
        assert tokens["operator"] in banner
        assert ("Apache Kafka on" in banner) == (kafka == "apache"), banner

        # Within a minute the simulated contamination and pollution episode are on the dashboard API.
        alerts: list[dict] = []  # type: ignore[type-arg]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            alerts = _get(f"{operations}/api/v1/alerts?state=active", tokens["viewer"])["alerts"]
            if any(a["severity"] == "critical" for a in alerts) and len(alerts) >= 3:
                break
            time.sleep(2)
        assert any(a["rule_id"] == "who-water-2022/ecoli" and a["severity"] == "critical" for a in alerts), (
            alerts
        )
        assert "environment" in {a["domain"] for a in alerts}
        kpis = _get(f"{operations}/api/v1/kpis", tokens["viewer"])
        assert any(k["kpi_id"] == "aqi" for k in kpis["indicators"])
        # SIGHUP (re-read credentials) reaches the services and stops nothing.
        os.kill(city.pid, signal.SIGHUP)
        time.sleep(2)
        assert city.poll() is None, Path(console.name).read_text()[-3000:]
        for port_name in ("ENVIRONMENT_HTTP_PORT", "ENVIRONMENT_PROCESSOR_PORT", "ENERGY_HTTP_PORT",
                          "ENERGY_PROCESSOR_PORT", "ENERGY_PV_PROCESSOR_PORT", "OPERATIONS_HTTP_PORT"):
            with urllib.request.urlopen(
                f"http://127.0.0.1:{ports[port_name]}/healthz", timeout=5
            ) as response:
                assert response.status == 200
        assert "restart" not in Path(console.name).read_text()
    finally:
        os.killpg(city.pid, signal.SIGINT)
        try:
            exit_code = city.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(city.pid, signal.SIGKILL)
            raise
    assert exit_code == 0, Path(console.name).read_text()[-3000:]
    assert "madina up: stopped" in Path(console.name).read_text()
