"""The dashboard shows what the environment publishes for regulators, in a real browser: the
NowCast AQI of each Casablanca district's station and each station's exceedances this year
against its allowance ("n of N allowed"), from KPIs the environment processor's step built and
put on the real ``kpis.v1``, served by a real operations service to headless Chromium.

Needs /usr/bin/chromium (``make system-deps``); skips and says so without it.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from madina.bus import KPIS, EventProducer, ensure_topics
from madina_proto.kpis.v1.kpis_pb2 import KpiObserved
from services.environment.convert import batches_by_station
from services.environment.domain.evaluator import EvaluatorConfig
from services.environment.domain.measurands import Observation, StationKind
from services.environment.domain.profiles import load_profiles, select_annual_limits, select_rules
from services.environment.domain.stations import load_stations
from services.environment.processor.station_stream import StoredState, apply_batch
from tests.support.operations import running_service

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
PROFILE = "eu-2024-2881"
# PM10 per station over two days: Anfa above the 45 µg/m³ daily limit, Maârif below it.
STATIONS = {"cas-air-anfa": 80.0, "cas-air-maarif": 30.0}
EXCEEDANCES_KPI = f"exceedances/{PROFILE}/pm10-24h"
SETTLE_S = 20.0

pytestmark = pytest.mark.browser


def environment_kpis() -> list[tuple[str, KpiObserved]]:
    """The kpis.v1 records the environment processor's step publishes for two stations' two days."""
    stations = {s.id: s for s in load_stations()}
    profiles = load_profiles()
    rules, limits = select_rules(profiles, [PROFILE]), select_annual_limits(profiles, [PROFILE])
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2, hours=1)
    records: list[tuple[str, KpiObserved]] = []
    for station_id, pm10 in STATIONS.items():
        stored = StoredState.new(station_id)
        for quarter in range(2 * 96 + 4):
            values = {"pm10_ugm3": pm10, "pm25_ugm3": pm10 / 2}
            observation = Observation(station_id, start + timedelta(minutes=15 * quarter), StationKind.AIR, values)
            [(_, _, batch)] = batches_by_station([observation])
            outputs = apply_batch(stored, batch, stations[station_id], rules, EvaluatorConfig(), None, limits)
            records.extend((key, message) for spec, key, message in outputs.records if isinstance(message, KpiObserved))
    return records


async def publish(bootstrap: str, records: list[tuple[str, KpiObserved]]) -> None:
    await ensure_topics(bootstrap, [KPIS], default_partitions=2)
    async with EventProducer(bootstrap, source="environment-processor") as producer:
        for key, message in records:
            await producer.send_and_wait(KPIS, key, message)


async def dashboard_tiles(url: str, token: str) -> dict[str, list[tuple[str, str, str, str]]]:
    """Per indicator group on the Indicators pane: (tile name, district line, value, band)."""
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            await page.add_init_script("localStorage.setItem('madina.operations.city', 'casablanca')")
            await page.goto(f"{url}/#token={token}")
            exceedances = page.locator(f"#pane-indicators [data-kpi-id='{EXCEEDANCES_KPI}'] .ind-tile")
            await expect(exceedances).to_have_count(len(STATIONS), timeout=SETTLE_S * 1000)
            groups: dict[str, list[tuple[str, str, str, str]]] = {}
            for kpi_id in ("aqi-nowcast", EXCEEDANCES_KPI):
                tiles = page.locator(f"#pane-indicators [data-kpi-id='{kpi_id}'] .ind-tile")
                groups[kpi_id] = [
                    (
                        await tile.locator(".ind-tile-name").inner_text(),
                        await tile.locator(".ind-tile-district").inner_text(),
                        (await tile.locator(".ind-tile-value").inner_text()).strip(),
                        await tile.locator(".ind-tile-band").inner_text(),
                    )
                    for tile in await tiles.all()
                ]
            assert problems == []
            return groups
        finally:
            await browser.close()


def test_dashboard_shows_nowcast_per_district_and_exceedances_against_allowance_per_station(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent; install it with `make system-deps` (apt-get install chromium)")
    records = environment_kpis()
    asyncio.run(publish(kafka_bootstrap, records))
    with running_service(tmp_path, kafka_bootstrap, f"sqlite:///{tmp_path / 'operations.db'}") as service:
        deadline = time.monotonic() + SETTLE_S
        wanted = {(EXCEEDANCES_KPI, station_id) for station_id in STATIONS}
        while True:  # the service follows kpis.v1 from the start; wait until it has read ours
            served = httpx.get(f"{service.http_url}/api/v1/kpis", headers=service.auth("viewer")).json()
            seen = {(i["kpi_id"], (i["entity"] or {}).get("entity_id")) for i in served["indicators"]}
            if wanted <= seen or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        groups = asyncio.run(dashboard_tiles(service.http_url, service.tokens["viewer"]))

    # The tiles say what the processor published last for each station: Anfa's closed days were
    # above 45 µg/m³, Maârif's were not.
    published = {(m.kpi_id, m.entity.entity_id): m for _, m in records}
    anfa, maarif = (published[(EXCEEDANCES_KPI, station_id)] for station_id in STATIONS)
    assert anfa.value >= 1 and maarif.value == 0
    assert sorted(groups[EXCEEDANCES_KPI]) == [
        ("cas-air-anfa", "Anfa", f"{anfa.value:g}", f"{anfa.value:g} of 18 allowed"),
        ("cas-air-maarif", "Maârif", "0", "0 of 18 allowed"),
    ]
    nowcast = {name: (district, band) for name, district, _, band in groups["aqi-nowcast"]}
    assert nowcast == {
        station_id: (district, published[("aqi-nowcast", station_id)].band)
        for station_id, district in (("cas-air-anfa", "Anfa"), ("cas-air-maarif", "Maârif"))
    }
    anfa_now, maarif_now = (published[("aqi-nowcast", station_id)] for station_id in STATIONS)
    assert anfa_now.band_level > maarif_now.band_level
