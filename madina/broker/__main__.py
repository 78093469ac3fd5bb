"""Command line for the embedded broker, the same flags as ``madina broker``.

python -m madina.broker --port 0 --memory
python -m madina.broker --host 127.0.0.1 --port 9092 --data-dir data/broker --default-partitions 4
"""

from __future__ import annotations

import argparse
import sys

from madina.broker.groups import DEFAULT_INITIAL_REBALANCE_DELAY_MS
from madina.broker.server import serve


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m madina.broker", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The broker's flags, shared by ``python -m madina.broker`` and ``madina broker``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9092, help="port to listen on; 0 picks a free one")
    storage = parser.add_mutually_exclusive_group()
    storage.add_argument("--data-dir", help="directory for segments, topics and committed offsets")
    storage.add_argument("--memory", action="store_true", help="keep nothing on disk")
    parser.add_argument("--default-partitions", type=int, default=1, help="partitions of auto-created topics")
    parser.add_argument(
        "--auto-create",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="create unknown topics when clients ask for their metadata",
    )
    parser.add_argument(
        "--fsync",
        choices=("acks-all", "always", "never"),
        default="acks-all",
        help="when to fsync before answering a produce (default: acks=all only)",
    )
    parser.add_argument(
        "--cleaner-interval-s",
        type=float,
        default=15.0,
        help="how often compacted topics are checked for cleaning (default 15 s)",
    )
    parser.add_argument(
        "--compact-segment-bytes",
        type=int,
        default=64 * 1024 * 1024,
        help="segment.bytes of compacted topics that do not set it (default 64 MiB)",
    )
    parser.add_argument(
        "--compact-segment-ms",
        type=int,
        default=3_600_000,
        help="segment.ms of compacted topics that do not set it (default 1 h)",
    )
    parser.add_argument(
        "--group-initial-rebalance-delay-ms",
        type=int,
        default=DEFAULT_INITIAL_REBALANCE_DELAY_MS,
        help="how long a consumer group's first rebalance waits for more members to join, "
        "as Kafka's group.initial.rebalance.delay.ms (default 3000; 0 turns it off)",
    )
    parser.add_argument(
        "--max-frame-bytes",
        type=int,
        default=100 * 1024 * 1024,
        help="close connections that send larger requests",
    )


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    return serve(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        memory=args.memory,
        default_partitions=args.default_partitions,
        auto_create=args.auto_create,
        fsync=args.fsync,
        max_frame_bytes=args.max_frame_bytes,
        cleaner_interval_s=args.cleaner_interval_s,
        compact_segment_bytes=args.compact_segment_bytes,
        compact_segment_ms=args.compact_segment_ms,
        group_initial_rebalance_delay_ms=args.group_initial_rebalance_delay_ms,
    )


if __name__ == "__main__":
    sys.exit(main())
