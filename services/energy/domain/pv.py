"""PV generation against expectation: clear-sky expected output per site, and underperformance.

Expected output (pvlib, PVWatts-style): solar position and Ineichen clear-sky irradiance at the
site (Linke turbidity from pvlib's climatology, looked up once per site and month), transposed to
the module plane with the isotropic sky model (albedo 0.2), cell temperature from the SAPM model
at an assumed 25 °C air and 1 m/s wind, ``pvwatts_dc`` with the site's kWp and a -0.4 %/°C
coefficient, ``system_losses`` (14 %), and the PVWatts inverter model capped at the site's AC
rating. It is an upper bound: what a clean, healthy plant makes under a cloudless sky.

pvlib costs ~10 ms per call, against a target of thousands of records per second, so
:class:`PvExpectation` computes a whole UTC day of ``slot_s`` (5 min) slots per site in one
vectorised call (~15 ms) and caches it; a reading then costs a dict lookup and an index.

Underperformance (rule ``pv-underperformance``, MINOR), precisely: for each reading, take the
slot containing its time; ``expected = clear-sky AC kW`` of that slot, scaled by
``poa_irradiance_wm2 / clear-sky POA`` when the reading carries a plane-of-array sensor value
(clouds then lower the expectation too). The reading *qualifies* only if the slot's clear-sky POA
irradiance is >= ``min_clear_poa_wm2`` (300 W/m²), the sun's apparent elevation is >=
``min_elevation_deg`` (15°) and expected >= ``min_expected_fraction`` (5 %) of the site's kWp.
The alert is raised when ``power_kw / expected < ratio_threshold`` (0.5) on
``sustained_readings`` (6, i.e. 30 min at 5-min reporting) consecutive qualifying readings, and
clears once the ratio stays >= ``clear_ratio`` (0.7) for ``clear_after`` (15 min). A
non-qualifying reading (night, dawn, dusk, low sun) is not judged: it resets the count and
neither raises nor clears, so there is never an alert at night or at dawn. Without an irradiance
sensor a heavily overcast day can look like underperformance; sites that matter should report
``poa_irradiance_wm2``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

from madina.alerts import (
    AlertTransition,
    DataGapPolicy,
    DataGapState,
    EpisodePolicy,
    EpisodeState,
    Evaluation,
    Severity,
    check_silence,
    quiet_step,
    record_observation,
)
from madina.alerts import step as episode_step
from madina.alerts.timeutil import time_from_text, time_to_text
from services.energy.domain.config import EnergyConfig, PvConfig
from services.energy.domain.kpis import HOUR, PV_ENERGY_KWH, PV_EXPECTED_KWH, PV_PERFORMANCE_RATIO, EnergyKpi
from services.energy.domain.metering import HOUR_S, DeltaKind, counter_delta, split_by_hour
from services.energy.domain.network import PvSite
from services.energy.domain.telemetry import GenerationReading, validate_generation

DOMAIN = "energy"
PV_UNDERPERFORMANCE = "pv-underperformance"
DATA_GAP = "data-gap"
_DAY_S = 86_400


class SlotExpectation(NamedTuple):
    """Clear-sky expectation for one site in one slot."""

    expected_kw: float
    clear_poa_wm2: float
    elevation_deg: float


class PvExpectation:
    """Clear-sky expected AC output per site and slot, computed a day at a time and cached.

    Pure in the sense that matters: answers depend only on the site, the time and the config.
    Bounded: at most ``max_days`` (site, day) entries, cleared when full.
    """

    def __init__(self, config: PvConfig | None = None, max_days: int = 512) -> None:
        self.config = config or PvConfig()
        self.max_days = max_days
        self._days: dict[tuple[str, int], tuple[list[float], list[float], list[float]]] = {}
        self._locations: dict[str, Any] = {}
        self._turbidity: dict[tuple[str, int], float] = {}

    def at(self, site: PvSite, moment: datetime) -> SlotExpectation:
        return self.at_posix(site, moment.timestamp())

    def at_posix(self, site: PvSite, posix_s: float) -> SlotExpectation:
        day = int(posix_s // _DAY_S)
        arrays = self._days.get((site.id, day))
        if arrays is None:
            arrays = self._compute_day(site, day)
        index = int((posix_s - day * _DAY_S) // self.config.slot_s)
        return SlotExpectation(arrays[0][index], arrays[1][index], arrays[2][index])

    def _compute_day(self, site: PvSite, day: int) -> tuple[list[float], list[float], list[float]]:
        import pandas as pd  # pvlib and pandas load in ~1 s; only a processor evaluating PV needs them
        import pvlib

        config = self.config
        location = self._locations.get(site.id)
        if location is None:
            location = pvlib.location.Location(site.lat, site.lon, tz="UTC", altitude=site.altitude_m, name=site.id)
            self._locations[site.id] = location
        start = pd.Timestamp(day * _DAY_S, unit="s", tz="UTC")
        slots = _DAY_S // config.slot_s
        # Evaluate at the middle of each slot: the slot's average, not its first instant.
        times = pd.date_range(start + pd.Timedelta(seconds=config.slot_s / 2), periods=slots,
                              freq=f"{config.slot_s}s")
        solar = location.get_solarposition(times)
        turbidity = self._linke(site, location, times)
        clear = location.get_clearsky(times, model="ineichen", solar_position=solar, linke_turbidity=turbidity)
        poa = pvlib.irradiance.get_total_irradiance(
            site.tilt_deg, site.azimuth_deg, solar["apparent_zenith"], solar["azimuth"],
            clear["dni"], clear["ghi"], clear["dhi"], albedo=0.2, model="isotropic",
        )["poa_global"].fillna(0.0).clip(lower=0.0)
        params = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]["open_rack_glass_polymer"]
        cell = pvlib.temperature.sapm_cell(poa, config.assumed_air_temp_c, config.assumed_wind_m_s, **params)
        pdc0 = site.peak_power_kw * 1000.0
        dc = pvlib.pvsystem.pvwatts_dc(poa, cell, pdc0, config.gamma_pdc_per_c) * (1 - config.system_losses)
        ac = pvlib.inverter.pvwatts(dc, site.inverter_power_kw * 1000.0 / config.inverter_efficiency,
                                    eta_inv_nom=config.inverter_efficiency)
        expected = (ac.fillna(0.0).clip(lower=0.0) / 1000.0).tolist()
        arrays = (expected, poa.tolist(), (90.0 - solar["apparent_zenith"]).tolist())
        if len(self._days) >= self.max_days:
            self._days.clear()
        self._days[(site.id, day)] = arrays
        return arrays

    def _linke(self, site: PvSite, location: Any, times: Any) -> float:
        month = int(times[0].month)
        key = (site.id, month)
        value = self._turbidity.get(key)
        if value is None:
            import pvlib

            value = float(pvlib.clearsky.lookup_linke_turbidity(times[:1], site.lat, site.lon).iloc[0])
            self._turbidity[key] = value
        return value


@dataclass(frozen=True)
class SiteState:
    """Everything remembered about one PV site between records; JSON-safe via ``to_dict``."""

    site_id: str
    episode: EpisodeState
    gap: DataGapState
    last_time: datetime | None = None
    counter_wh: float | None = None
    streak: int = 0
    closed_before: int | None = None
    hours: Mapping[int, tuple[float, float]] = field(default_factory=dict)
    """Open hours: hour start -> (measured Wh, expected Wh)."""

    @classmethod
    def new(cls, site_id: str) -> SiteState:
        return cls(site_id, EpisodeState(DOMAIN, site_id, PV_UNDERPERFORMANCE), DataGapState.new(DOMAIN, site_id))

    def to_dict(self) -> dict[str, Any]:
        return {
            "site_id": self.site_id, "episode": self.episode.to_dict(), "gap": self.gap.to_dict(),
            "last_time": time_to_text(self.last_time), "counter_wh": self.counter_wh, "streak": self.streak,
            "closed_before": self.closed_before,
            "hours": {str(h): list(v) for h, v in sorted(self.hours.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SiteState:
        return cls(
            site_id=data["site_id"], episode=EpisodeState.from_dict(data["episode"]),
            gap=DataGapState.from_dict(data["gap"]), last_time=time_from_text(data.get("last_time")),
            counter_wh=data.get("counter_wh"), streak=int(data.get("streak", 0)),
            closed_before=data.get("closed_before"),
            hours={int(h): (float(v[0]), float(v[1])) for h, v in data.get("hours", {}).items()},
        )


class PvVerdict(NamedTuple):
    """How one reading compares with expectation (for status views and tests)."""

    expected_kw: float
    ratio: float | None
    """``None`` when the reading does not qualify."""
    qualifies: bool


class SiteResult(NamedTuple):
    state: SiteState
    transitions: list[AlertTransition]
    kpis: list[EnergyKpi]
    rejected: list[tuple[GenerationReading, str]]
    verdicts: list[PvVerdict]


def judge(reading: GenerationReading, site: PvSite, expectation: SlotExpectation, config: PvConfig) -> PvVerdict:
    """Whether a reading qualifies for the underperformance rule, and its ratio (module docstring)."""
    expected = expectation.expected_kw
    if reading.poa_irradiance_wm2 is not None and expectation.clear_poa_wm2 > 0:
        expected *= min(reading.poa_irradiance_wm2 / expectation.clear_poa_wm2, 1.2)
    qualifies = (
        expectation.clear_poa_wm2 >= config.min_clear_poa_wm2
        and expectation.elevation_deg >= config.min_elevation_deg
        and expected >= config.min_expected_fraction * site.peak_power_kw
    )
    if not qualifies:
        return PvVerdict(expected, None, False)
    return PvVerdict(expected, reading.power_kw / expected, True)


def apply_generation(
    state: SiteState,
    readings: Sequence[GenerationReading],
    site: PvSite,
    expectation: PvExpectation,
    config: EnergyConfig,
) -> SiteResult:
    """Fold one site's readings into its state; ``state`` itself is not changed."""
    pv = config.pv
    policy = EpisodePolicy(clear_after=timedelta(seconds=pv.clear_after_s))
    transitions: list[AlertTransition] = []
    kpis: list[EnergyKpi] = []
    rejected: list[tuple[GenerationReading, str]] = []
    verdicts: list[PvVerdict] = []
    episode, gap, streak = state.episode, state.gap, state.streak
    last_time, counter = state.last_time, state.counter_wh
    hours = dict(state.hours)
    closed_before = state.closed_before
    valid = []
    for reading in readings:
        problems = validate_generation(reading, {site.id: site})
        if reading.site_id != site.id:
            rejected.append((reading, f"site_id: expected {site.id!r}"))
        elif problems:
            rejected.append((reading, "; ".join(problems)))
        else:
            valid.append(reading)
    for reading in sorted(valid, key=lambda r: r.observe_time):
        moment = reading.observe_time.astimezone(UTC)
        if last_time is not None and moment <= last_time:
            rejected.append((reading, "observe_time: not newer than the site's last report"))
            continue
        posix = moment.timestamp()
        slot = expectation.at_posix(site, posix)
        verdict = judge(reading, site, slot, pv)
        verdicts.append(verdict)
        # Energy: the counter if there is one, else the reading's power held over the interval.
        if last_time is not None:
            start = last_time.timestamp()
            if reading.energy_wh is not None and counter is not None:
                delta, kind = counter_delta(counter, reading.energy_wh, posix - start,
                                            site.inverter_power_kw * 1000.0, 1.5)
                measured = 0.0 if kind is DeltaKind.IMPLAUSIBLE else delta
            else:
                held = min(posix - start, site.reporting_interval.total_seconds())
                measured = reading.power_kw * 1000.0 * held / HOUR_S
            expected_wh = verdict.expected_kw * 1000.0 * (posix - start) / HOUR_S
            for hour, share in split_by_hour(start, posix, 1.0):
                if closed_before is not None and hour < closed_before:
                    hour = int(posix // HOUR_S) * HOUR_S
                old = hours.get(hour, (0.0, 0.0))
                hours[hour] = (old[0] + measured * share, old[1] + expected_wh * share)
        if reading.energy_wh is not None:
            counter = reading.energy_wh
        last_time = moment
        gap, cleared = record_observation(gap, moment, site.alert_details())
        if cleared is not None:
            transitions.append(replace(cleared, details=cleared.details.refine(category=DATA_GAP, unit="s")))
        if not verdict.qualifies or verdict.ratio is None:
            streak = 0
            continue
        breached = verdict.ratio < pv.ratio_threshold
        streak = streak + 1 if breached else 0
        severity = Severity.MINOR if breached and streak >= pv.sustained_readings else None
        clear = verdict.ratio >= pv.clear_ratio
        if not episode.active and severity is None:
            continue
        quiet = quiet_step(episode, moment, severity, verdict.ratio, clear, policy)
        if quiet is not None:
            episode = quiet
            continue
        evaluation = Evaluation(moment, severity, verdict.ratio, pv.ratio_threshold if severity else None, clear)
        episode, transition = episode_step(episode, evaluation, policy)
        if transition is not None:
            if severity is not None:
                message = (f"PV site {site.name}: {reading.power_kw:.1f} kW, {verdict.ratio:.0%} of the "
                           f"{verdict.expected_kw:.1f} kW expected (threshold {pv.ratio_threshold:.0%}) "
                           f"for {streak} readings")
            else:
                message = f"PV site {site.name}: output back to {verdict.ratio:.0%} of expectation"
            details = site.alert_details().refine(
                {"expected_kw": f"{verdict.expected_kw:.2f}"}, category=PV_UNDERPERFORMANCE, unit=""
            )
            transitions.append(replace(transition, message=message, details=details))
    if last_time is not None:
        limit = last_time.timestamp() - config.metering.hour_lateness_s
        for hour in sorted(h for h in hours if h + HOUR_S <= limit):
            measured_wh, expected_wh = hours.pop(hour)
            start_time = datetime.fromtimestamp(hour, UTC)
            kpis.append(_kpi(PV_ENERGY_KWH, site, start_time, measured_wh / 1000.0))
            kpis.append(_kpi(PV_EXPECTED_KWH, site, start_time, expected_wh / 1000.0))
            if expected_wh > 0:
                kpis.append(_kpi(PV_PERFORMANCE_RATIO, site, start_time, measured_wh / expected_wh))
        closed_before = max(int(limit // HOUR_S) * HOUR_S, closed_before or 0)
    new_state = SiteState(site.id, episode, gap, last_time, counter, streak, closed_before, hours)
    return SiteResult(new_state, transitions, kpis, rejected, verdicts)


def check_site_silence(state: SiteState, now: datetime, site: PvSite, gap_factor: float = 3.0) -> SiteResult:
    """``data-gap`` for a PV site silent too long at ``now`` (a watermark)."""
    policy = DataGapPolicy(expected_interval=site.reporting_interval, gap_factor=gap_factor)
    gap, transition = check_silence(state.gap, now, policy, site.alert_details())
    transitions = []
    if transition is not None:
        transitions.append(replace(transition, details=transition.details.refine(category=DATA_GAP, unit="s")))
    new_state = state if gap is state.gap else replace(state, gap=gap)
    return SiteResult(new_state, transitions, [], [], [])


def _kpi(kpi_id: str, site: PvSite, start: datetime, value: float) -> EnergyKpi:
    return EnergyKpi(kpi_id, "pv-site", site.id, site.city, site.district, HOUR, start, value)


def expected_day_kwh(site: PvSite, day: date, expectation: PvExpectation) -> float:
    """Clear-sky expected energy of a UTC day (for dashboards and tests)."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
    slot_s = expectation.config.slot_s
    return sum(expectation.at_posix(site, start + i * slot_s).expected_kw for i in range(_DAY_S // slot_s)) * (
        slot_s / HOUR_S
    )


__all__ = [
    "PV_UNDERPERFORMANCE",
    "PvExpectation",
    "PvVerdict",
    "SiteResult",
    "SiteState",
    "SlotExpectation",
    "apply_generation",
    "check_site_silence",
    "expected_day_kwh",
    "judge",
]
