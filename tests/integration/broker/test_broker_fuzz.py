"""Hostile bytes on the wire: the broker closes the offending connection, logs why, and keeps
serving everyone else."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.protocol.metadata import ApiVersionsRequest, ApiVersionsResponse, MetadataRequest

from tests.integration.broker.conftest import BrokerSubprocess


@pytest.fixture
def fuzz_broker(own_broker_factory) -> BrokerSubprocess:
    return own_broker_factory("--memory", "--max-frame-bytes", str(1024 * 1024))


def _send(bootstrap: str, payload: bytes, read: bool = True) -> bytes:
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(payload)
        if not read:
            return b""
        connection.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while chunk := connection.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
        return b"".join(chunks)


def _request(
    api_key: int, version: int, correlation_id: int, body: bytes = b"", flexible: bool = False
) -> bytes:
    header = (
        struct.pack(">hhih", api_key, version, correlation_id, 4) + b"fuzz" + (b"\x00" if flexible else b"")
    )
    return struct.pack(">i", len(header) + len(body)) + header + body


def _api_versions_works(bootstrap: str) -> bool:
    request = ApiVersionsRequest[0]()
    request.with_header(correlation_id=42, client_id="check")
    answer = _send(bootstrap, bytes(request.encode(header=True, framed=True)))
    size, correlation_id = struct.unpack_from(">ii", answer)
    response = ApiVersionsResponse.decode(answer[8 : 4 + size], version=0)
    return correlation_id == 42 and response.error_code == 0 and len(response.api_keys) > 10


def test_unknown_api_key_and_absurd_versions_close_only_that_connection(fuzz_broker):
    assert _send(fuzz_broker.bootstrap, _request(999, 0, 1)) == b""
    assert _send(fuzz_broker.bootstrap, _request(3, 999, 2)) == b""
    assert _send(fuzz_broker.bootstrap, _request(-5, -1, 3)) == b""
    assert fuzz_broker.alive and _api_versions_works(fuzz_broker.bootstrap)
    assert "unsupported API key 999" in fuzz_broker.log_text()


def test_api_versions_with_a_future_version_gets_kip_511_fallback(fuzz_broker):
    answer = _send(fuzz_broker.bootstrap, _request(18, 99, 7, b"\x00", flexible=True))
    size, correlation_id = struct.unpack_from(">ii", answer)
    response = ApiVersionsResponse.decode(answer[8 : 4 + size], version=0)
    assert correlation_id == 7
    assert response.error_code == 35
    assert any(entry.api_key == 18 for entry in response.api_keys)


def test_oversized_negative_and_truncated_frames_are_rejected(fuzz_broker):
    assert _send(fuzz_broker.bootstrap, struct.pack(">i", 0x7FFFFFFF) + b"x" * 100) == b""
    assert _send(fuzz_broker.bootstrap, struct.pack(">i", -1)) == b""
    assert _send(fuzz_broker.bootstrap, struct.pack(">i", 2) + b"ab") == b""
    # A length promising more than is sent, then the client goes away mid-frame.
    _send(fuzz_broker.bootstrap, struct.pack(">i", 1000) + b"\x00\x03\x00\x05", read=False)
    # A valid header whose body is cut short.
    metadata = MetadataRequest[5](
        topics=[MetadataRequest.MetadataRequestTopic(name="x" * 50)], allow_auto_topic_creation=False
    )
    metadata.with_header(correlation_id=9, client_id="fuzz")
    frame = bytes(metadata.encode(header=True, framed=False))[:-30]
    assert _send(fuzz_broker.bootstrap, struct.pack(">i", len(frame)) + frame) == b""
    assert fuzz_broker.alive and _api_versions_works(fuzz_broker.bootstrap)
    log = fuzz_broker.log_text()
    assert "frame size" in log and "cannot decode" in log


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(payload=st.binary(min_size=1, max_size=300))
def test_random_bytes_never_take_the_broker_down(fuzz_broker, payload):
    _send(fuzz_broker.bootstrap, payload)
    assert fuzz_broker.alive


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    api_key=st.sampled_from([0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19, 20, 22, 32, 37, 42]),
    version=st.integers(0, 12),
    body=st.binary(max_size=200),
)
def test_known_api_keys_with_random_bodies_never_take_the_broker_down(fuzz_broker, api_key, version, body):
    _send(fuzz_broker.bootstrap, _request(api_key, version, 1, body, flexible=version >= 9))
    assert fuzz_broker.alive


def test_broker_still_serves_real_clients_after_fuzzing(fuzz_broker):
    for payload in (b"\x00" * 10, b"\xff" * 64, _request(0, 9, 1, b"\x01\x02")):
        _send(fuzz_broker.bootstrap, payload)
    assert _api_versions_works(fuzz_broker.bootstrap)
