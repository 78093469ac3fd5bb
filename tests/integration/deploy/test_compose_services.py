"""Every container of deploy/compose.yaml, run as a local process with the compose env file's
settings against Apache Kafka and PostgreSQL: the topics job succeeds, and each service turns
healthy. There is no Docker engine here, so this is what proves the deployment's commands and
settings go together; only the host names (``kafka``, ``postgres``), the secret paths, the ports
and the data folder are rewritten for loopback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from madina.auth import write_credentials
from madina.devservers.apache_kafka import ApacheKafkaCluster
from madina.devservers.ports import free_port
from madina.domains import local_principals
from madina.grpc.tls import ensure_self_signed
from tests.support.compose import madina_containers
from tests.support.processes import wait_for_http

PORT_VARIABLES = (
    "MADINA_ENVIRONMENT_HTTP_PORT",
    "MADINA_ENVIRONMENT_GRPC_PORT",
    "MADINA_ENVIRONMENT_PROCESSOR_PORT",
    "MADINA_OPERATIONS_HTTP_PORT",
    "MADINA_OPERATIONS_GRPC_PORT",
)
HEALTH_PORT = {
    "environment-api": "MADINA_ENVIRONMENT_HTTP_PORT",
    "environment-processor": "MADINA_ENVIRONMENT_PROCESSOR_PORT",
    "operations": "MADINA_OPERATIONS_HTTP_PORT",
}


@pytest.fixture
def postgres_role() -> str:
    """The compose file's database role and database (`madina`), with a password, on the test server."""
    server = os.environ.get("MADINA_TEST_POSTGRES_URL")
    if not server:
        pytest.skip("PostgreSQL tests skipped: MADINA_TEST_POSTGRES_URL is not set")
    password = "compose-test-password"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text("DROP DATABASE IF EXISTS madina WITH (FORCE)"))
        connection.execute(text("DROP ROLE IF EXISTS madina"))
        connection.execute(text(f"CREATE ROLE madina LOGIN PASSWORD '{password}'"))
        connection.execute(text("CREATE DATABASE madina OWNER madina"))
    url = make_url(server)
    try:
        yield f"{url.host}:{url.port or 5432}", password
    finally:
        with admin.connect() as connection:
            connection.execute(text("DROP DATABASE IF EXISTS madina WITH (FORCE)"))
            connection.execute(text("DROP ROLE IF EXISTS madina"))
        admin.dispose()


@pytest.mark.postgres
def test_every_compose_container_command_runs_healthy_on_apache_kafka_and_postgresql(
    apache_kafka: ApacheKafkaCluster, postgres_role, tmp_path: Path
) -> None:
    postgres_address, password = postgres_role
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir(mode=0o700)
    tokens = write_credentials(secrets_dir / "credentials.yaml", local_principals())
    cert, key = ensure_self_signed(secrets_dir)
    (secrets_dir / "postgres-password").write_text(password)
    (secrets_dir / "simulator-token").write_text(tokens["simulator"])
    (secrets_dir / "alert-signing.key").write_bytes(os.urandom(32))
    containers = madina_containers(
        addresses={"kafka": apache_kafka.bootstrap, "postgres": postgres_address},
        secrets={
            "credentials.yaml": secrets_dir / "credentials.yaml",
            "grpc-cert.pem": cert,
            "grpc-key.pem": key,
            "postgres-password": secrets_dir / "postgres-password",
            "simulator-token": secrets_dir / "simulator-token",
            "alert-signing.key": secrets_dir / "alert-signing.key",
        },
    )
    assert {"topics", *HEALTH_PORT} <= set(containers), sorted(containers)
    ports = {name: str(free_port()) for name in PORT_VARIABLES}
    base = {key: value for key, value in os.environ.items() if not key.startswith("MADINA_")}

    def environment(service: str) -> dict[str, str]:
        env = {**base, **containers[service].env, **ports}
        env["MADINA_DATA_DIR"] = str(tmp_path / service)
        env["MADINA_BIND_HOST"] = "127.0.0.1"
        return env

    def argv(service: str) -> list[str]:
        assert containers[service].argv[0] == "madina"
        return [sys.executable, "-m", "madina", *containers[service].argv[1:]]

    topics = subprocess.run(argv("topics"), env=environment("topics"), capture_output=True, text=True, timeout=180)
    assert topics.returncode == 0, topics.stdout + topics.stderr
    assert "created" in topics.stdout

    started: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for service in HEALTH_PORT:
            log = (tmp_path / f"{service}.log").open("wb")
            started[service] = subprocess.Popen(
                argv(service), env=environment(service), stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path
            )
        for service, port_variable in HEALTH_PORT.items():
            try:
                wait_for_http(f"http://127.0.0.1:{ports[port_variable]}/healthz", 90, started[service])
            except Exception as error:
                log_text = (tmp_path / f"{service}.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"{service} did not turn healthy: {error}\n{log_text}") from error
        # The demo profile's simulator streams into the API with its token from the secret file.
        if "simulator" in containers:
            env = {**environment("simulator"), "MADINA_SIMULATOR_TOKEN": tokens["simulator"]}
            simulator = subprocess.run(
                [*argv("simulator"), "--duration", "3"], env=env, capture_output=True, text=True, timeout=120
            )
            assert simulator.returncode == 0, simulator.stdout[-2000:] + simulator.stderr[-2000:]
        time.sleep(1)
        assert all(process.poll() is None for process in started.values())
    finally:
        for process in started.values():
            process.terminate()
        for process in started.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
