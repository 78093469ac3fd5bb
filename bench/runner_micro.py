"""Micro-benchmark of the entity runner's own costs per record and per alert, this tree against a
git revision, side by side in one run:

    .venv/bin/python -m bench.runner_micro --before REV [--rounds 3] [--count 3000]

The same measurements run in a child process per tree (``madina/`` of REV is extracted with
``git archive``, then put first on the child's path), the trees alternating round by round; the
medians of the rounds are printed, in microseconds of CPU per call:

- pure functions on the hot path: ``standard_headers``, ``time_to_text``, ``timestamp``,
  ``EpisodeState.to_dict`` of an open episode, ``to_alert_event``;
- sends through a faust app's producer to an embedded broker (CPU of the whole process from the
  first send until the producer's flush returns, so aiokafka's sender is included): an alert
  through ``ExactlyOnceAlerts.publish`` (ledger, outbox, headers, send) and a snapshot through the
  runner's outbound queue.

CPU time, not wall clock: the machine is shared. The whole worker's cost per record is measured by
``bench.mobility`` and ``bench.waste`` (``cpu_ms_per_1k_*``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def pure_costs() -> dict[str, float]:
    from datetime import UTC, datetime, timedelta

    from madina.alerts import AlertState, AlertTransition, EpisodeState, Severity
    from madina.alerts.timeutil import time_to_text
    from madina.bus.alert_events import timestamp, to_alert_event
    from madina.bus.codec import standard_headers
    from madina.bus.topics import KPIS

    now = datetime(2026, 11, 30, 9, 15, 2, 123456, tzinfo=UTC)
    episode = EpisodeState("waste", "container-1", "container-full", last_event_time=now, alert_id="a-1",
                           raise_time=now - timedelta(hours=1), severity=Severity.MAJOR, threshold=0.95,
                           revision=2, last_emit_time=now, last_emitted_value=0.97)
    transition = AlertTransition(
        alert_id="a-1", domain="waste", source_id="container-1", rule_id="container-full", state=AlertState.UPDATED,
        severity=Severity.MAJOR, observed_value=0.97, threshold=0.95, raise_time=now - timedelta(hours=1),
        clear_time=None, event_time=now, revision=2, message="Container 1 is 97% full")
    calls = {
        "standard_headers": lambda: standard_headers(KPIS, "bench"),
        "time_to_text": lambda: time_to_text(now),
        "timestamp": lambda: timestamp(now),
        "episode_to_dict": episode.to_dict,
        "to_alert_event": lambda: to_alert_event(transition),
    }
    number = 20_000
    return {name: 1e6 * min(timeit.repeat(call, timer=time.process_time, number=number, repeat=3)) / number
            for name, call in calls.items()}


async def send_costs(bootstrap: str, count: int) -> dict[str, float]:
    from datetime import UTC, datetime

    from google.protobuf.timestamp_pb2 import Timestamp

    from madina.bus.topics import KPIS
    from madina.devservers.ports import free_port
    from madina.settings import MadinaSettings
    from madina.streams import ExactlyOnceAlerts, create_stream_app
    from madina.streams.entities import _Outbound
    from madina_proto.alerts.v1 import alerts_pb2

    app = create_stream_app(f"runner-micro-{time.time_ns()}", MadinaSettings(kafka_bootstrap=bootstrap),
                            web_port=free_port())
    await app.maybe_start_producer()
    alerts = ExactlyOnceAlerts(app, {}, domain="bench", source="bench", bootstrap=bootstrap, input_topics=(),
                               outbox_of=lambda value: None, partitions_of=lambda value: set())
    stamp = Timestamp()
    stamp.FromDatetime(datetime.now(UTC))
    run = time.time_ns()
    events = [alerts_pb2.AlertEvent(alert_id=f"bench-{run}-{n}", revision=1, domain="bench", event_time=stamp,
                                    raise_time=stamp, message="a bench alert") for n in range(count)]
    outbox: dict[str, str] = {}
    await alerts.publish(outbox, events[:1])  # connections and metadata before the clock starts
    await app.producer.flush()
    began = time.process_time()
    for event in events[1:]:
        await alerts.publish(outbox, [event])
        outbox.clear()
    await app.producer.flush()
    per_alert = 1e6 * (time.process_time() - began) / (count - 1)

    outbound = _Outbound(app, "bench", lambda sent: None)
    value = events[0].SerializeToString()
    outbound.snapshot(KPIS, b"warm-up", value)
    await outbound.flush()
    await app.producer.flush()
    began = time.process_time()
    for n in range(count):
        outbound.snapshot(KPIS, f"k{n % 500}".encode(), value)
        if n % 32 == 31:
            await outbound.flush()
    await outbound.flush()
    await app.producer.flush()
    per_snapshot = 1e6 * (time.process_time() - began) / count
    await app.producer.stop()
    return {"alert_publish": per_alert, "snapshot_send": per_snapshot}


def child(bootstrap: str, count: int) -> None:
    costs = pure_costs()
    costs.update(asyncio.run(send_costs(bootstrap, count)))
    print(json.dumps(costs))


def extract(revision: str, into: Path) -> None:
    archive = subprocess.run(["git", "archive", revision, "madina"], cwd=REPO_ROOT, check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)


def measure(tree: Path, bootstrap: str, count: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", bootstrap, "--count", str(count)],
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree)}, cwd=tree,
                         check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="HEAD", help="the git revision to compare this tree with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=3000, help="alerts and snapshots sent per round")
    parser.add_argument("--child", metavar="BOOTSTRAP", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.count)
        return 0
    from bench.pipeline import start_broker

    with tempfile.TemporaryDirectory(prefix="runner-micro-") as tmp:
        before_tree = Path(tmp) / "before"
        before_tree.mkdir()
        extract(args.before, before_tree)
        broker = start_broker(Path(tmp) / "broker", Path(tmp) / "broker.log", 4)
        try:
            runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
            for n in range(args.rounds):
                for name in ("before", "after") if n % 2 == 0 else ("after", "before"):
                    runs[name].append(measure(before_tree if name == "before" else REPO_ROOT, broker.bootstrap,
                                              args.count))
                    print(f"round {n + 1} {name}: {runs[name][-1]}", file=sys.stderr, flush=True)
        finally:
            broker.stop()
    print(f"CPU us per call, median of {args.rounds} rounds; before = {args.before}, after = this tree")
    print(f"{'':20s} {'before':>9s} {'after':>9s} {'after/before':>13s}")
    for name in runs["before"][0]:
        before = statistics.median(run[name] for run in runs["before"])
        after = statistics.median(run[name] for run in runs["after"])
        print(f"{name:20s} {before:9.2f} {after:9.2f} {after / before:13.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
