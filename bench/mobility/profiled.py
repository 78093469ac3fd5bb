"""Run a ``python -m MODULE ARGS`` command under cProfile timed by CPU, not wall clock:
``python -m bench.mobility.profiled OUT MODULE [ARGS...]``; the stats go to ``OUT`` when it exits.

``python -m cProfile`` times by the wall clock, so on a shared machine a process waiting for the
CPU, or in a system call while another process runs, charges that wait to whatever function it
was in; per-CPU timing charges each function only the processor time it used. (A coroutine
counts one call per resumption, so read ``ncalls`` of ``async def`` functions with care.)
"""

from __future__ import annotations

import cProfile
import runpy
import sys
import time


def main() -> None:
    out, module, *args = sys.argv[1:]
    sys.argv = [module, *args]
    profile = cProfile.Profile(time.process_time)
    profile.enable()
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        profile.disable()
        profile.dump_stats(out)


if __name__ == "__main__":
    main()
