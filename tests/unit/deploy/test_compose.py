"""deploy/compose.yaml stays valid and keeps its promises: Apache Kafka at the version the tests
use, one container per Madina component from one image, each running a real `madina` command,
topics created before any service starts, health checks and restart policies, no published Kafka."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from madina.cli import build_parser
from madina.domains import component, discover
from tests.support.compose import COMPOSE_FILE, ENV_FILE, MADINA_IMAGE, load_compose, madina_containers

REPO = Path(__file__).resolve().parents[3]
POM = REPO / "tools" / "kafka" / "pom.xml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()[0]


def check_madina_argv(argv: Sequence[str]) -> argparse.Namespace:
    """Parse a container's argv with the CLI's own parser; a wrong command raises AssertionError."""
    assert argv and argv[0] == "madina", f"{argv} does not run madina"
    try:
        args = build_parser().parse_args(list(argv[1:]))
    except SystemExit as error:
        raise AssertionError(f"`{' '.join(argv)}` is not a madina command") from error
    assert getattr(args, "func", None), f"`{' '.join(argv)}` names no madina subcommand"
    if args.command == "service":
        assert args.name and not args.list, f"`{' '.join(argv)}` runs no component"
        try:
            component(args.name)
        except KeyError as error:
            raise AssertionError(error.args[0]) from None
    return args


def test_compose_file_validates_against_the_compose_spec() -> None:
    checker = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert checker, "check-jsonschema is installed from requirements-dev.lock"
    result = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_container_command_is_a_real_madina_subcommand() -> None:
    containers = madina_containers()
    assert containers, "no service of the Madina image"
    for run in containers.values():
        check_madina_argv(run.argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["madina", "service", "environment-apii"],
        ["madina", "servce", "operations"],
        ["madina", "topics", "make"],
        ["madina", "service"],
        ["python", "-m", "madina", "topics"],
    ],
)
def test_a_wrong_container_command_is_refused(argv: list[str]) -> None:
    with pytest.raises(AssertionError):
        check_madina_argv(argv)


def test_every_component_the_supervisor_starts_has_its_own_container() -> None:
    runs = madina_containers()
    served = {check_madina_argv(run.argv).name for run in runs.values() if run.argv[1] == "service"}
    components = {each.name for domain in discover() for each in domain.components}
    assert components <= served, f"no container for {sorted(components - served)}"
    commands = [run.argv[1:] for run in runs.values()]
    assert commands.count(["service", "environment-api"]) == 1, "one container per component"


def test_every_madina_container_uses_the_one_image_and_the_one_env_file(compose: dict[str, Any]) -> None:
    builds = {
        str(service.get("build")) for service in compose["services"].values() if service.get("image") == MADINA_IMAGE
    }
    assert len(builds) == 1
    for name in madina_containers():
        assert compose["services"][name]["env_file"] == [ENV_FILE.name], name


def test_the_topics_job_creates_the_registry_before_any_service_starts(compose: dict[str, Any]) -> None:
    runs = madina_containers()
    jobs = [name for name, run in runs.items() if run.argv[1:3] == ["topics", "create"]]
    assert len(jobs) == 1, "exactly one topic-creation job"
    job = jobs[0]
    assert check_madina_argv(runs[job].argv).action == "create"
    assert compose["services"][job]["restart"] == "no", "a one-shot job"
    for name, run in runs.items():
        if run.argv[1] != "service":
            continue
        depends = compose["services"][name]["depends_on"]
        assert depends[job] == {"condition": "service_completed_successfully"}, name
        assert depends["kafka"] == {"condition": "service_healthy"}, name
    assert compose["services"]["operations"]["depends_on"]["postgres"] == {"condition": "service_healthy"}


def test_what_others_wait_on_has_a_healthcheck_and_servers_restart(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for target, dependency in (service.get("depends_on") or {}).items():
            if dependency["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits on {target}, which has no healthcheck"
    for name, run in madina_containers().items():
        if run.argv[1] == "service":
            assert "healthcheck" in services[name], f"{name} has no healthcheck"
            assert services[name]["restart"] in ("unless-stopped", "always", "on-failure"), name
    for name in ("kafka", "postgres"):
        assert services[name]["restart"] == "unless-stopped"


def test_state_lives_in_named_volumes(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source in compose["volumes"], f"{name} mounts {source}, not a named volume"
    assert any(v.startswith("postgres-data:") for v in compose["services"]["postgres"]["volumes"])


def kafka_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if s.get("image", "").startswith("apache/kafka:")}


def test_kafka_image_is_the_version_tools_kafka_pom_fetches(compose: dict[str, Any]) -> None:
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    version = ElementTree.parse(POM).getroot().findtext("m:properties/m:kafka.version", namespaces=namespace)
    assert version, f"no kafka.version in {POM}"
    images = {service["image"] for service in kafka_services(compose).values()}
    assert images == {f"apache/kafka:{version}"}


def test_kafka_is_reachable_only_inside_the_compose_network(compose: dict[str, Any]) -> None:
    for name, service in kafka_services(compose).items():
        assert "ports" not in service, f"{name} publishes a port; add a SASL_SSL listener instead"
        assert service["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_one_kafka_node_by_default_and_three_in_the_cluster_profile(compose: dict[str, Any]) -> None:
    kafkas = kafka_services(compose)
    default = [name for name, s in kafkas.items() if not s.get("profiles")]
    cluster = [name for name, s in kafkas.items() if "kafka-cluster" in s.get("profiles", [])]
    assert default == ["kafka"]
    assert len(default + cluster) == 3
    node_ids = {name: str(kafkas[name]["environment"]["KAFKA_NODE_ID"]) for name in kafkas}
    assert len(set(node_ids.values())) == 3


def _cluster_block() -> dict[str, str]:
    """The commented-out settings madina.env documents for the kafka-cluster profile."""
    text = ENV_FILE.read_text()
    block = text.split("# Three-broker cluster", 1)[1].split("\n\n", 1)[0]
    return dict(
        line.removeprefix("# ").split("=", 1) for line in block.splitlines() if re.match(r"# [A-Z_]+=", line)
    )


def test_the_cluster_settings_in_the_env_file_match_the_three_nodes(compose: dict[str, Any]) -> None:
    cluster = _cluster_block()
    kafkas = kafka_services(compose)
    assert cluster["COMPOSE_PROFILES"] == "kafka-cluster"
    assert sorted(cluster["MADINA_KAFKA_BOOTSTRAP"].split(",")) == sorted(f"{name}:9092" for name in kafkas)
    assert cluster["MADINA_TOPIC_REPLICATION_FACTOR"] == "3"
    assert cluster["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
    voters = dict(v.split("@") for v in cluster["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(","))
    assert voters == {str(s["environment"]["KAFKA_NODE_ID"]): f"{name}:9093" for name, s in kafkas.items()}
    # A setting the block switches must exist outside it too, or single-node compose breaks.
    single = load_compose()[1]
    assert set(cluster) - {"COMPOSE_PROFILES"} <= set(single)


def test_every_interpolated_variable_is_set_in_the_env_file() -> None:
    text = COMPOSE_FILE.read_text()
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    assert used, "compose.yaml takes its values from madina.env"
    missing = used - set(load_compose()[1])
    assert not missing, f"compose.yaml interpolates {sorted(missing)}, which deploy/madina.env does not set"


def test_the_demo_simulators_are_a_profile_and_feed_a_city_the_deployment_serves(compose: dict[str, Any]) -> None:
    simulators = {name: run for name, run in madina_containers().items() if run.argv[1] == "simulate"}
    assert "simulator" in simulators
    served = load_compose()[1].get("MADINA_CITIES", "[]")
    for run in simulators.values():
        assert run.profiles == ["demo"]
        city = check_madina_argv(run.argv).city
        assert served == "[]" or city in served


def test_every_domain_api_with_an_http_simulator_gets_one_in_its_own_network_namespace(
    compose: dict[str, Any]
) -> None:
    """A simulator posts to 127.0.0.1 (it has no ingest-URL setting), so it must share the network
    namespace of the one API it feeds: a simulator beside environment-api cannot reach waste-api."""
    fed: dict[str, str] = {}
    for name, service in compose["services"].items():
        command = service.get("command") or []
        if command[:1] != ["simulate"]:
            continue
        domains = check_madina_argv(["madina", *command]).domain
        assert domains and len(domains) == 1, f"{name} must run exactly one domain (--domain)"
        mode = service.get("network_mode", "")
        assert mode == f"service:{domains[0]}-api", f"{name} feeds {domains[0]} but shares {mode!r}"
        fed[domains[0]] = name
    http_fed = {d.name for d in discover() if d.simulator and f"{d.name}-api" in compose["services"]}
    assert http_fed <= set(fed), f"no simulator for {sorted(http_fed - set(fed))}"


def test_secrets_are_files_outside_git(compose: dict[str, Any]) -> None:
    for secret in compose["secrets"].values():
        assert secret["file"].startswith("./secrets/")
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "--no-index", "deploy/secrets/credentials.yaml"], cwd=REPO, check=False
    )
    assert ignored.returncode == 0, "deploy/secrets/ must be git-ignored"
