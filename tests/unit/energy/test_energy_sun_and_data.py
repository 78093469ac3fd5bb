"""Seed network, settings, sun phases at Berkane and Casablanca across the year, validation."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import pytest

from madina.geo import district_at, load_cities
from services.energy.data import generate_network
from services.energy.domain import GenerationReading, LampTelemetry, Phase, validate_generation, validate_lamp_telemetry
from services.energy.domain.config import ConfigError, load_config

BERKANE = (34.92, -2.32)
CASABLANCA = (33.57, -7.59)
DAYS = [date(2024, 3, 20), date(2024, 6, 21), date(2024, 9, 22), date(2024, 12, 21)]


def test_seed_network_has_a_few_hundred_lamps_per_city_on_several_circuits(network):
    for city in ("berkane", "casablanca"):
        lamps = [lamp for lamp in network.lamps.values() if lamp.city == city]
        circuits = [c for c in network.circuits.values() if c.city == city]
        assert 300 <= len(lamps) <= 500 and len(circuits) >= 20
        assert sum(1 for s in network.pv_sites.values() if s.city == city) >= 2
    assert all(lamp.replaced_power_w > lamp.rated_power_w for lamp in network.lamps.values())


def test_every_lamp_lies_in_its_district_and_matches_its_circuit(network):
    cities = load_cities()
    for lamp in network.lamps.values():
        district = district_at(cities[lamp.city], lamp.lat, lamp.lon)
        assert district is not None and district.id == lamp.district, lamp.id
        circuit = network.circuits[lamp.circuit]
        assert circuit.cabinet == lamp.cabinet and lamp.id in circuit.lamp_ids


def test_committed_network_is_what_the_generator_writes():
    assert generate_network.main(["--check"]) == 0


def test_settings_file_cites_an_emission_factor_and_rejects_unknown_keys(tmp_path, config):
    assert 0.3 < config.grid.emission_factor_t_per_mwh < 1.0 and config.grid.emission_factor_source
    bad = tmp_path / "bad.yaml"
    bad.write_text("lighting:\n  voltage_minimum: 3\n")
    with pytest.raises(ConfigError, match=r"lighting\.voltage_minimum"):
        load_config(bad)
    override = tmp_path / "override.yaml"
    override.write_text("grid:\n  emission_factor_t_per_mwh: 0.5\n")
    assert load_config(override).emission_t_per_kwh == pytest.approx(0.0005)


def _noaa_sunrise_sunset(lat: float, lon: float, day: date) -> tuple[datetime, datetime]:
    """Sunrise/sunset (UTC) by the NOAA general solar position formulas: independent of astral."""
    gamma = 2 * math.pi / 365 * (day.timetuple().tm_yday - 1)
    eqtime = 229.18 * (0.000075 + 0.001868 * math.cos(gamma) - 0.032077 * math.sin(gamma)
                       - 0.014615 * math.cos(2 * gamma) - 0.040849 * math.sin(2 * gamma))
    decl = (0.006918 - 0.399912 * math.cos(gamma) + 0.070257 * math.sin(gamma) - 0.006758 * math.cos(2 * gamma)
            + 0.000907 * math.sin(2 * gamma) - 0.002697 * math.cos(3 * gamma) + 0.00148 * math.sin(3 * gamma))
    phi = math.radians(lat)
    ha = math.degrees(math.acos(math.cos(math.radians(90.833)) / (math.cos(phi) * math.cos(decl))
                                - math.tan(phi) * math.tan(decl)))
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    rise = midnight + timedelta(minutes=720 - 4 * (lon + ha) - eqtime)
    set_ = midnight + timedelta(minutes=720 - 4 * (lon - ha) - eqtime)
    return rise, set_


@pytest.mark.parametrize("place", [BERKANE, CASABLANCA], ids=["berkane", "casablanca"])
@pytest.mark.parametrize("day", DAYS, ids=lambda d: d.isoformat())
def test_sunrise_and_sunset_agree_with_noaa_within_three_minutes(sun, place, day):
    times = sun.times(*place, day)
    rise, set_ = _noaa_sunrise_sunset(*place, day)
    assert abs((times.at("sunrise") - rise).total_seconds()) < 180
    assert abs((times.at("sunset") - set_).total_seconds()) < 180
    assert times.civil_dawn < times.sunrise < times.sunset < times.civil_dusk


def test_casablanca_winter_solstice_matches_published_times(sun):
    # Published for Casablanca, 21 Dec (local time UTC+1): sunrise 08:31, sunset 18:26.
    times = sun.times(*CASABLANCA, date(2024, 12, 21))
    local = [times.at(name) + timedelta(hours=1) for name in ("sunrise", "sunset")]
    assert abs(local[0].hour * 60 + local[0].minute - (8 * 60 + 31)) <= 3
    assert abs(local[1].hour * 60 + local[1].minute - (18 * 60 + 26)) <= 3


@pytest.mark.parametrize("place", [BERKANE, CASABLANCA], ids=["berkane", "casablanca"])
@pytest.mark.parametrize("day", DAYS, ids=lambda d: d.isoformat())
def test_phase_is_night_after_civil_dusk_day_at_noon_and_twilight_around_sunset(sun, place, day):
    times = sun.times(*place, day)
    noon = datetime(day.year, day.month, day.day, 12, 30, tzinfo=UTC)
    assert sun.phase(*place, noon) is Phase.DAY
    assert sun.phase(*place, times.at("civil_dusk") + timedelta(minutes=1)) is Phase.NIGHT
    assert sun.phase(*place, times.at("civil_dawn") - timedelta(minutes=1)) is Phase.NIGHT
    assert sun.phase(*place, times.at("sunset") - timedelta(minutes=10)) is Phase.TWILIGHT
    assert sun.phase(*place, times.at("sunrise") + timedelta(minutes=10)) is Phase.TWILIGHT


def test_winter_nights_are_longer_than_summer_nights_at_berkane(sun):
    def night_hours(day: date) -> float:
        times = sun.times(*BERKANE, day)
        return 24 - (times.civil_dusk - times.civil_dawn) / 3600
    assert night_hours(date(2024, 12, 21)) - night_hours(date(2024, 6, 21)) > 4


def test_lamp_telemetry_validation_names_each_bad_field(network):
    lamp = next(iter(network.lamps.values()))
    good = LampTelemetry(lamp.id, datetime(2024, 1, 1, tzinfo=UTC), True, 50.0, 20.0, 230.0, 100.0, "")
    assert validate_lamp_telemetry(good, network.lamps) == []
    bad = LampTelemetry("nope", datetime(2024, 1, 1), True, 120.0, -1.0, 900.0, math.nan, "x" * 100)
    fields = [error.split(":")[0] for error in validate_lamp_telemetry(bad, network.lamps)]
    assert fields == ["lamp_id", "observe_time", "dimming_pct", "power_w", "voltage_v", "energy_wh", "fault_code"]


def test_generation_validation_bounds_power_by_the_inverter(network):
    site = network.pv_sites["brk-pv-mairie"]
    moment = datetime(2024, 6, 21, 12, tzinfo=UTC)
    assert validate_generation(GenerationReading(site.id, moment, 20.0), network.pv_sites) == []
    errors = validate_generation(GenerationReading(site.id, moment, 500.0, poa_irradiance_wm2=5000), network.pv_sites)
    assert [e.split(":")[0] for e in errors] == ["power_kw", "poa_irradiance_wm2"]
