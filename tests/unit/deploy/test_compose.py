"""The compose file stays valid and keeps its promises: real Kafka and PostgreSQL, health checks, no secrets inline."""

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"


def test_compose_file_validates_against_the_compose_spec() -> None:
    checker = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert checker, "check-jsonschema is installed from requirements-dev.lock"
    result = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", str(DEPLOY / "compose.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_madina_service_has_a_healthcheck_and_takes_secrets_from_files() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"kafka", "postgres"} <= set(services)
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"
    env_text = (DEPLOY / "madina.env").read_text()
    assert "MADINA_KAFKA_BOOTSTRAP=kafka:9092" in env_text
    assert (
        "postgresql" in env_text and "PASSWORD" not in env_text.split("MADINA_DATABASE_URL")[1].split("\n")[0]
    )
    for secret in compose["secrets"].values():
        assert secret["file"].startswith("./secrets/")
