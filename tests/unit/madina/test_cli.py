"""The `madina` command: help, the topic registry, and clear refusals."""

from __future__ import annotations

import os
import subprocess
import sys


def _madina(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "madina", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("MADINA_")}, **env},
        check=False,
    )


def test_help_lists_every_subcommand() -> None:
    result = _madina("--help")
    assert result.returncode == 0
    for command in ("topics", "broker", "service", "simulate", "up"):
        assert command in result.stdout


def test_topics_lists_shared_and_domain_topics_with_their_dead_letter_twins() -> None:
    lines = _madina("topics").stdout.splitlines()
    names = {line.split()[0] for line in lines[1:]}
    assert {
        "alerts.v1",
        "alerts.v1.dlq",
        "kpis.v1",
        "environment.air-quality.v1",
        "environment.air-quality.v1.dlq",
    } <= names
    air = next(line for line in lines if line.startswith("environment.air-quality.v1 "))
    assert "station_id" in air and "madina.environment.v1.AirQualityObservedBatch" in air


def test_service_names_the_missing_embedded_broker_instead_of_crashing() -> None:
    result = _madina("service", "operations", MADINA_EMBEDDED_BROKER_PORT="9")
    assert result.returncode == 2
    assert "MADINA_KAFKA_BOOTSTRAP" in result.stderr and "127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_service_is_refused_with_the_known_ones() -> None:
    result = _madina("service", "trams")
    assert result.returncode == 2
    assert "environment-api" in result.stderr and "operations" in result.stderr
