"""`madina up` polls and prints https:// for services that serve HTTP over TLS (MADINA_HTTP_TLS_*)."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from madina.devservers.launch import loopback_tls_context, wait_for_http
from madina.grpc.tls import ensure_self_signed
from madina.supervisor import Child


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def _server(tls: tuple[Path, Path] | None) -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _child(port: int, tls: ssl.SSLContext | None) -> Child:
    return Child(
        name="api", argv=[], env={}, log_path=Path("unused.log"),
        health_url=f"http://127.0.0.1:{port}/healthz",
        urls={"API": f"http://127.0.0.1:{port}/docs", "elsewhere": "http://127.0.0.1:1/docs"},
        http_tls=tls,
    )


def test_a_service_serving_tls_is_polled_and_printed_with_https(tmp_path: Path) -> None:
    cert, key = ensure_self_signed(tmp_path)
    with _server((cert, key)) as port:
        without_tls_settings = _child(port, None)
        assert not without_tls_settings.healthy()  # what `madina up` did: it never saw the API ready
        child = _child(port, loopback_tls_context(cert))
        assert child.healthy()
        assert child.health_url == f"https://127.0.0.1:{port}/healthz"
        assert child.urls == {"API": f"https://127.0.0.1:{port}/docs", "elsewhere": "http://127.0.0.1:1/docs"}
        wait_for_http(f"https://127.0.0.1:{port}/healthz", timeout_s=5, tls=loopback_tls_context(cert))


def test_a_plain_health_page_stays_http_when_tls_is_configured(tmp_path: Path) -> None:
    cert, _ = ensure_self_signed(tmp_path)
    with _server(None) as port:
        child = _child(port, loopback_tls_context(cert))
        assert child.healthy()
        assert child.health_url == f"http://127.0.0.1:{port}/healthz"


def test_a_server_with_another_certificate_is_not_trusted(tmp_path: Path) -> None:
    served = ensure_self_signed(tmp_path / "served")
    other, _ = ensure_self_signed(tmp_path / "other")
    with _server(served) as port:
        assert not _child(port, loopback_tls_context(other)).healthy()
