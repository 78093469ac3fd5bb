"""Running a long-lived asyncio process the same way everywhere: stop cleanly on SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine
from typing import Any


async def wait_for_stop_signal() -> None:
    """Return when the process gets SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def run_until_stopped(main: Callable[[], Coroutine[Any, Any, None]]) -> int:
    """Run ``main()`` until it returns or a stop signal arrives, then let it clean up."""

    async def runner() -> None:
        task = asyncio.create_task(main())
        stopper = asyncio.create_task(wait_for_stop_signal())
        done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if task not in done:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        stopper.cancel()

    asyncio.run(runner())
    return 0
