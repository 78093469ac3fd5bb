"""A domain API's feed follower that fails says so when it fails, and follows its feed again."""

from __future__ import annotations

import asyncio
import logging

import pytest

from madina.serving import start_follower


async def test_a_failing_follower_is_logged_at_once_and_followed_again(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0
    following = asyncio.Event()

    async def follow_status_feed() -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError("feed gone")
        following.set()
        await asyncio.Event().wait()

    task = start_follower(follow_status_feed, retry_first_s=0.01, retry_max_s=0.05)
    await asyncio.wait_for(following.wait(), 5)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and calls == 3
    assert all("following its feed again" in r.getMessage() for r in errors)
    assert "follow_status_feed" in errors[0].follower  # type: ignore[attr-defined]
    assert [r.retry_in_s for r in errors] == [0.01, 0.02]  # type: ignore[attr-defined]
    assert isinstance(errors[0].exc_info[1], ConnectionError)  # type: ignore[index]
    assert not task.done()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_follower_that_ends_is_followed_again(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0
    again = asyncio.Event()

    async def follow_once() -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            again.set()
            await asyncio.Event().wait()

    task = start_follower(follow_once, retry_first_s=0.01)
    await asyncio.wait_for(again.wait(), 5)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "feed follower ended: following its feed again"]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_follower_cancelled_at_shutdown_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    async def follow_forever() -> None:
        await asyncio.Event().wait()

    task = start_follower(follow_forever)
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
