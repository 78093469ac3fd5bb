"""Run every benchmark, one after the other: ``python -m bench [--quick] [--only broker,environment,operations]``.

Each suite runs in its own process (they start brokers and workers of their own), prints its
progress and table, and writes ``bench/results/<suite>.json``. Suites run sequentially because
this is a 2-core machine: side-by-side comparisons happen *inside* a suite, never across suites.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

SUITES = ("broker", "environment", "mobility", "energy", "waste", "operations", "devices")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke runs")
    parser.add_argument("--only", default=",".join(SUITES), help="comma-separated suites")
    args = parser.parse_args()
    failed = []
    for suite in args.only.split(","):
        started = time.monotonic()
        print(f"\n=== bench.{suite} ===", flush=True)
        code = subprocess.call([sys.executable, "-m", f"bench.{suite}", *(["--quick"] if args.quick else [])])
        print(f"=== bench.{suite}: {'ok' if code == 0 else f'exit {code}'} in {time.monotonic() - started:.0f} s")
        if code:
            failed.append(suite)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
