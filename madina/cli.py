"""The ``madina`` command (also ``python -m madina``).

madina topics                 list every registered topic
madina topics create          create the registered topics on MADINA_KAFKA_BOOTSTRAP (deployments)
madina scopes                 list every scope the domains' APIs check, and who has it locally
madina broker [...]           run the embedded Kafka-protocol broker
madina service NAME           run one component of a domain (see `madina service --list`)
madina simulate [...]         stream realistic city data into the services
madina up [--kafka apache]    the whole city on this machine: broker, services, simulator
madina agency add|revoke|list manage partner tokens in the credentials file (no restart needed)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from madina import __version__


def _cmd_topics(args: argparse.Namespace) -> int:
    from madina.domains import all_topics

    if args.action == "create":
        return _create_topics(args.wait)
    rows = [("TOPIC", "KEY", "MESSAGE", "PARTITIONS", "CLEANUP", "RETENTION")]
    for spec in all_topics():
        for each in (spec, spec.dead_letter):
            rows.append(
                (
                    each.name,
                    each.key,
                    each.message_type.DESCRIPTOR.full_name,
                    str(each.partitions or "default"),
                    each.cleanup_policy,
                    "forever" if each.retention_ms < 0 else f"{each.retention_ms // 86_400_000}d",
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _cmd_scopes(args: argparse.Namespace) -> int:
    from madina.domains import discover

    rows = [("SCOPE", "DOMAIN", "LOCAL PRINCIPALS", "GRANTS")]
    rows += [(scope.name, domain.name, ",".join(scope.local_principals) or "-", scope.description)
             for domain in discover() for scope in domain.scopes]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _create_topics(wait_s: float) -> int:
    """What a deployment's init job runs: the supervisor's topic creation, without the supervisor."""
    import asyncio

    from madina.bus.admin import ensure_topics, wait_for_broker
    from madina.domains import all_topics
    from madina.settings import MadinaSettings, load_settings

    settings = load_settings(MadinaSettings)

    async def create() -> list[str]:
        await wait_for_broker(settings.bootstrap_servers, timeout_s=wait_s)
        return await ensure_topics(
            settings.bootstrap_servers,
            all_topics(),
            default_partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication_factor,
        )

    try:
        created = asyncio.run(create())
    except (TimeoutError, RuntimeError) as error:
        print(f"madina topics create: {error}", file=sys.stderr)
        return 1
    print(
        f"madina topics create: {len(created)} created on {settings.bootstrap_servers} "
        f"({settings.topic_partitions} partitions unless a topic sets its own, "
        f"replication factor {settings.topic_replication_factor}); existing topics keep their partitions and "
        + ("get the configs they declare (changes logged)" if settings.topic_config_reconcile
           else "their configs (MADINA_TOPIC_CONFIG_RECONCILE=false: differences logged)")
    )
    return 0


def _cmd_broker(args: argparse.Namespace) -> int:
    from madina.broker.__main__ import run

    return run(args)


def _cmd_service(args: argparse.Namespace) -> int:
    from madina.domains import component, discover

    if args.list or not args.name:
        for domain in discover():
            for each in domain.components:
                print(f"{each.name:28} {each.description}")
        return 0
    try:
        entry = component(args.name)
    except KeyError as error:
        print(f"madina service: {error.args[0]}", file=sys.stderr)
        return 2
    problem = _embedded_broker_missing()
    if problem:
        print(f"madina service: {problem}", file=sys.stderr)
        return 2
    from madina.privatefiles import restrict_umask

    restrict_umask()  # a SQLite store or anything else it creates is the owner's alone
    return entry.load()()


def _embedded_broker_missing() -> str | None:
    """With MADINA_KAFKA_BOOTSTRAP unset a service uses the embedded broker; say so if none runs."""
    import socket

    from madina.settings import EMBEDDED_BROKER_HOST, MadinaSettings, load_settings

    settings = load_settings(MadinaSettings)
    if not settings.uses_embedded_broker:
        return None
    with socket.socket() as probe:
        probe.settimeout(1.0)
        if probe.connect_ex((EMBEDDED_BROKER_HOST, settings.embedded_broker_port)) == 0:
            return None
    return (
        f"MADINA_KAFKA_BOOTSTRAP is unset and no embedded broker answers on "
        f"{EMBEDDED_BROKER_HOST}:{settings.embedded_broker_port}; start one with "
        "`madina broker --data-dir data/broker` (or run everything with `madina up`), "
        "or point MADINA_KAFKA_BOOTSTRAP at a Kafka cluster"
    )


def _cmd_simulate(args: argparse.Namespace) -> int:
    from madina.simulation import run_simulation

    return run_simulation(
        city=args.city,
        rate=args.rate,
        duration_s=args.duration,
        seed=args.seed,
        speedup=args.speedup,
        domains=args.domain,
    )


def _cmd_agency(args: argparse.Namespace) -> int:
    from madina.agency import run

    return run(args)


def _cmd_environment_replay(args: argparse.Namespace) -> int:
    from services.environment.replay_command import run

    return run(args)


def _cmd_up(args: argparse.Namespace) -> int:
    from madina.supervisor import run_city

    return run_city(city=args.city, rate=args.rate, simulate=not args.no_simulator, kafka=args.kafka)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="madina", description="Madina smart-city platform.")
    parser.add_argument("--version", action="version", version=f"madina {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    topics = commands.add_parser("topics", help="list the topic registry, or create its topics")
    topics.add_argument(
        "action", nargs="?", choices=["list", "create"], default="list",
        help="create: every registered topic and its .dlq twin that does not exist yet, with "
        "MADINA_TOPIC_PARTITIONS and MADINA_TOPIC_REPLICATION_FACTOR",
    )
    topics.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the broker (create)")
    topics.set_defaults(func=_cmd_topics)

    scopes = commands.add_parser("scopes", help="list the scopes the domains declare")
    scopes.set_defaults(func=_cmd_scopes)

    broker = commands.add_parser("broker", help="run the embedded Kafka-protocol broker")
    from madina.broker.__main__ import add_arguments as add_broker_arguments

    add_broker_arguments(broker)
    broker.set_defaults(func=_cmd_broker)

    service = commands.add_parser("service", help="run one domain component")
    service.add_argument("name", nargs="?", help="component name, e.g. environment-api")
    service.add_argument("--list", action="store_true", help="list components")
    service.set_defaults(func=_cmd_service)

    simulate = commands.add_parser("simulate", help="stream realistic city data")
    simulate.add_argument("--city", choices=["berkane", "casablanca"], default="casablanca")
    simulate.add_argument("--rate", type=float, default=20.0, help="observations per second, all domains")
    simulate.add_argument("--duration", type=float, default=0, help="seconds to run; 0 runs until stopped")
    simulate.add_argument("--seed", type=int, default=1)
    simulate.add_argument(
        "--speedup",
        type=float,
        default=60.0,
        help="simulated seconds per real second (a diurnal day in 24 minutes at 60)",
    )
    simulate.add_argument("--domain", action="append", help="only these domains (repeatable)")
    simulate.set_defaults(func=_cmd_simulate)

    up = commands.add_parser("up", help="run the whole city locally")
    up.add_argument("--city", choices=["berkane", "casablanca"], default="casablanca")
    up.add_argument("--rate", type=float, default=20.0)
    up.add_argument("--no-simulator", action="store_true")
    up.add_argument(
        "--kafka",
        choices=["embedded", "apache"],
        default="embedded",
        help="the local broker: Madina's embedded one (no JVM), or Apache Kafka from Maven Central (needs Java)",
    )
    up.set_defaults(func=_cmd_up)

    environment = commands.add_parser("environment", help="environment tools (replay a proposed threshold profile)")
    environment_commands = environment.add_subparsers(dest="environment_command", metavar="COMMAND", required=True)
    replay = environment_commands.add_parser(
        "replay", help="re-evaluate stored observations under a proposed profile and compare with the profiles in force"
    )
    from services.environment.replay_command import add_arguments as add_replay_arguments

    add_replay_arguments(replay)
    replay.set_defaults(func=_cmd_environment_replay)

    agency = commands.add_parser("agency", help="add, revoke or list partner tokens")
    from madina.agency import add_arguments as add_agency_arguments

    add_agency_arguments(agency)
    agency.set_defaults(func=_cmd_agency)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
