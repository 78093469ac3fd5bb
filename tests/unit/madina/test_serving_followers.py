"""A domain API's feed follower that fails says so when it fails, not at shutdown."""

from __future__ import annotations

import asyncio
import logging

import pytest

from madina.serving import start_follower


async def test_a_failing_follower_is_logged_as_an_error_at_once(caplog: pytest.LogCaptureFixture) -> None:
    async def follow_status_feed() -> None:
        raise ConnectionError("feed gone")

    task = start_follower(follow_status_feed)
    await asyncio.wait([task])
    await asyncio.sleep(0)  # the done callback runs on the next turn
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "no longer followed" in record.getMessage() and "follow_status_feed" in record.follower  # type: ignore[attr-defined]
    assert isinstance(record.exc_info[1], ConnectionError)  # type: ignore[index]


async def test_a_follower_cancelled_at_shutdown_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    async def follow_forever() -> None:
        await asyncio.Event().wait()

    task = start_follower(follow_forever)
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
