"""The gateway's inbox (aiomqtt's message queue, drained a batch at a time): arrival order kept,
no more than a batch taken, a short wait to fill one, and the connection's end raised."""

from __future__ import annotations

import asyncio

import aiomqtt
import pytest

from services.devices.gateway.inbox import Inbox


def message(mid: int) -> aiomqtt.Message:
    return aiomqtt.Message("madina/city/waste/container-level/d", b"{}", qos=1, retain=False, mid=mid,
                           properties=None)


async def forever() -> None:
    await asyncio.Event().wait()


async def test_a_batch_is_taken_in_arrival_order_and_never_larger_than_asked() -> None:
    inbox, connection = Inbox(), asyncio.create_task(forever())
    for mid in range(1, 8):
        inbox.put_nowait(message(mid))

    first = await inbox.take(5, 0.0, connection)
    rest = await inbox.take(5, 0.0, connection)

    assert [m.mid for m in first] == [1, 2, 3, 4, 5]
    assert [m.mid for m in rest] == [6, 7]
    assert inbox.qsize() == 0
    connection.cancel()


async def test_take_waits_for_the_first_message_then_returns_a_partial_batch_after_the_fill_wait() -> None:
    inbox, connection = Inbox(), asyncio.create_task(forever())
    taking = asyncio.create_task(inbox.take(100, 0.05, connection))
    await asyncio.sleep(0.01)
    assert not taking.done()  # nothing arrived yet

    inbox.put_nowait(message(1))
    inbox.put_nowait(message(2))

    assert [m.mid for m in await asyncio.wait_for(taking, 5)] == [1, 2]
    connection.cancel()


async def test_a_full_batch_returns_without_waiting_out_the_fill_wait() -> None:
    inbox, connection = Inbox(), asyncio.create_task(forever())
    taking = asyncio.create_task(inbox.take(3, 3600.0, connection))
    for mid in (1, 2, 3, 4):
        inbox.put_nowait(message(mid))
        await asyncio.sleep(0)

    assert [m.mid for m in await asyncio.wait_for(taking, 5)] == [1, 2, 3]


async def test_the_error_that_ended_the_connection_is_raised_while_waiting() -> None:
    inbox = Inbox()

    async def lost() -> None:
        await asyncio.sleep(0.01)
        raise aiomqtt.MqttError("connection lost")

    with pytest.raises(aiomqtt.MqttError, match="connection lost"):
        await asyncio.wait_for(inbox.take(10, 0.0, asyncio.create_task(lost())), 5)
