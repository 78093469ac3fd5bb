"""A minimal MQTT 3.1.1 QoS 1 publisher for the benchmark's device side.

paho-mqtt's Python client (under aiomqtt) publishes about 900 QoS 1 messages/s on this machine,
less than the gateway is asked to carry, so the sender would be what is measured. This writes
CONNECT and PUBLISH packets itself and counts PUBACKs, keeping a window of unacknowledged
messages, which is all a sensor fleet does. Benchmark use only: no TLS, no reconnect.
"""

from __future__ import annotations

import asyncio
import struct


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _text(value: str) -> bytes:
    raw = value.encode()
    return struct.pack("!H", len(raw)) + raw


class WirePublisher:
    def __init__(self, window: int = 1000) -> None:
        self.window = asyncio.Semaphore(window)
        self._next_id = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._acks: asyncio.Task[None] | None = None
        self._unacked: set[int] = set()
        self._drained = asyncio.Event()

    async def connect(self, port: int, client_id: str, username: str, password: str) -> None:
        self._reader, self._writer = await asyncio.open_connection("127.0.0.1", port)
        variable = _text("MQTT") + bytes([4, 0x80 | 0x40 | 0x02]) + struct.pack("!H", 60)
        payload = _text(client_id) + _text(username) + _text(password)
        self._writer.write(b"\x10" + _length(len(variable) + len(payload)) + variable + payload)
        connack = await self._reader.readexactly(4)
        if connack[0] != 0x20 or connack[3] != 0:
            raise ConnectionError(f"CONNACK refused: {connack.hex()}")
        self._acks = asyncio.create_task(self._read_acks())

    async def _read_acks(self) -> None:
        assert self._reader is not None
        while True:
            packet = await self._reader.readexactly(4)
            if packet[0] != 0x40:
                raise ConnectionError(f"unexpected packet {packet.hex()}")
            self._unacked.discard(struct.unpack("!H", packet[2:])[0])
            self.window.release()
            if not self._unacked:
                self._drained.set()

    async def publish(self, topic: str, payload: bytes) -> None:
        """Queue one QoS 1 PUBLISH once the window has room (the broker's PUBACK frees it)."""
        assert self._writer is not None
        await self.window.acquire()
        self._next_id = self._next_id % 65535 + 1
        self._unacked.add(self._next_id)
        self._drained.clear()
        body = _text(topic) + struct.pack("!H", self._next_id) + payload
        self._writer.write(b"\x32" + _length(len(body)) + body)
        if self._writer.transport.get_write_buffer_size() > 1 << 20:
            await self._writer.drain()

    async def close(self) -> None:
        """After every PUBLISH is acknowledged."""
        assert self._writer is not None and self._acks is not None
        if self._unacked:
            await self._drained.wait()
        self._writer.write(b"\xe0\x00")  # DISCONNECT
        await self._writer.drain()
        self._acks.cancel()
        self._writer.close()
