"""The whole operations center in a real browser: a real ``madina service operations`` process on
a fresh broker and SQLite store, the dashboard in headless Chromium, an alert from the bus, and an
operator's acknowledgement that REST and gRPC then agree on.

Needs /usr/bin/chromium (``make system-deps``); skips and says so without it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from madina.bus import ALERTS, EventProducer
from madina.devservers.launch import service_argv
from madina.devservers.ports import free_port
from madina_proto.alerts.v1 import alerts_pb2 as pb
from madina_proto.alerts.v1 import alerts_pb2_grpc as pb_grpc
from tests.support.operations import alert_event, new_id, write_test_secrets
from tests.support.processes import BrokerProcess, wait_for_http

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.browser


class OperationsProcess:
    def __init__(
        self,
        process: subprocess.Popen[bytes],
        http_url: str,
        grpc_target: str,
        tokens: dict[str, str],
        tls_cert: bytes,
        bootstrap: str,
    ) -> None:
        self.process, self.http_url, self.grpc_target = process, http_url, grpc_target
        self.tokens, self.tls_cert, self.bootstrap = tokens, tls_cert, bootstrap


@pytest.fixture(scope="module")
def operations(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperationsProcess]:
    if not CHROMIUM.exists():
        print(f"e2e dashboard test skipped: {CHROMIUM} is absent (run `make system-deps`)")
        pytest.skip(f"{CHROMIUM} is absent; install it with `make system-deps` (apt-get install chromium)")
    directory = tmp_path_factory.mktemp("operations-e2e")
    credentials_file, tokens, cert, key = write_test_secrets(directory)
    broker = BrokerProcess.start(memory=True, default_partitions=2)
    http_port, grpc_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MADINA_")},
        "MADINA_KAFKA_BOOTSTRAP": broker.bootstrap,
        "MADINA_CREDENTIALS_FILE": str(credentials_file),
        "MADINA_GRPC_TLS_CERT_FILE": str(cert),
        "MADINA_GRPC_TLS_KEY_FILE": str(key),
        "MADINA_DATABASE_URL": f"sqlite:///{directory / 'operations.db'}",
        "MADINA_OPERATIONS_HTTP_PORT": str(http_port),
        "MADINA_OPERATIONS_GRPC_PORT": str(grpc_port),
        "MADINA_TOPIC_PARTITIONS": "2",
        "MADINA_LOG_FORMAT": "console",
    }
    process = subprocess.Popen(
        service_argv("operations"), env=env, cwd=directory
    )
    try:
        http_url = f"http://127.0.0.1:{http_port}"
        wait_for_http(f"{http_url}/healthz", timeout_s=60, process=process)
        yield OperationsProcess(
            process, http_url, f"localhost:{grpc_port}", tokens, cert.read_bytes(), broker.bootstrap
        )
    finally:
        process.terminate()
        try:
            assert process.wait(15) == 0, "the service did not stop cleanly on SIGTERM"
        finally:
            if process.poll() is None:
                process.kill()
            broker.stop()


async def test_operator_acknowledges_a_live_alert_from_the_dashboard(operations: OperationsProcess) -> None:
    from playwright.async_api import async_playwright, expect

    alert_id = new_id("e2e")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            await page.goto(f"{operations.http_url}/#token={operations.tokens['operator']}")
            await expect(page.locator("#live-indicator")).to_have_attribute(
                "data-state", "connected", timeout=15_000
            )

            async with EventProducer(operations.bootstrap, source="e2e") as producer:
                await producer.send_and_wait(ALERTS, alert_id, alert_event(alert_id))
            row = page.locator(f"#alert-board [data-alert-id='{alert_id}']")
            await expect(row).to_have_attribute("data-status", "active_unacknowledged", timeout=15_000)

            await row.locator("[data-action=ack]").click()
            await expect(row).to_have_attribute("data-status", "active_acknowledged", timeout=15_000)

            # Assign asks for a name in the page's own <dialog> (not window.prompt, which would
            # block rendering); a native prompt, should the page ever use one, is answered too.
            page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept("casa-env-oncall")))
            await row.locator("[data-action=assign]").click()
            await page.locator("#action-dialog-input").fill("casa-env-oncall")
            async with page.expect_response(lambda r: r.url.endswith(f"/{alert_id}/assign")) as assigned:
                await page.locator("#action-dialog-confirm").click()
            assert (await assigned.value).status == 200
            assert problems == []
        finally:
            await browser.close()

    async with httpx.AsyncClient(
        base_url=operations.http_url, headers={"Authorization": f"Bearer {operations.tokens['viewer']}"}
    ) as client:
        rest = (await client.get(f"/api/v1/alerts/{alert_id}")).json()["alert"]
    assert rest["status"] == "active_acknowledged" and rest["acknowledged_by"] == "operator"
    assert rest["assignee"] == "casa-env-oncall"
    credentials = grpc.ssl_channel_credentials(root_certificates=operations.tls_cert)
    async with grpc.aio.secure_channel(operations.grpc_target, credentials) as channel:
        reply = await pb_grpc.AlertServiceStub(channel).GetAlert(
            pb.GetAlertRequest(alert_id=alert_id),
            metadata=[("authorization", f"Bearer {operations.tokens['partner']}")],
        )
    assert reply.alert.status == pb.ALERT_STATUS_ACTIVE_ACKNOWLEDGED
    assert reply.alert.acknowledged_by == "operator"
    assert reply.alert.assignee == "casa-env-oncall"
    assert [change.cause for change in reply.history] == ["event", "acknowledge", "assign"]
