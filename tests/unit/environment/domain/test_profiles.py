"""Threshold profiles loaded from YAML (services.environment.domain.profiles)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from madina.alerts import Severity
from services.environment.domain.profiles import (
    BUILTIN_PROFILES_PATH,
    Comparison,
    ProfileError,
    load_profiles,
    resolve_profile,
    select_rules,
)

OPERATOR_PROFILE = """
profiles:
  - name: casablanca-local
    version: 1
    title: Stricter local PM2.5 rule
    source:
      standard: Casablanca municipal air plan
      document: Arrêté municipal (example)
      url: https://example.org/casablanca/air
      year: 2025
    rules:
      - id: pm25-1h
        measurand: pm25_ugm3
        window: 1h
        comparison: above
        clear_after: 10m
        levels:
          - {threshold: 50, severity: minor}
          - {threshold: 100, severity: major}
"""


def write(tmp_path: Path, text: str, name: str = "extra.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_builtin_profiles_load_from_data_file():
    profiles = load_profiles()
    assert BUILTIN_PROFILES_PATH.name == "profiles.yaml"
    assert {"who-2021@1", "eu-2008-50@1", "eu-2024-2881@1", "who-water-2022@1", "who-noise-2018@1"} <= set(
        profiles
    )


def test_every_builtin_rule_cites_standard_document_url_and_year():
    for profile in load_profiles().values():
        for rule in profile.rules:
            assert rule.source.standard and rule.source.document
            assert rule.source.url.startswith("https://")
            assert 1980 <= rule.source.year <= 2030
            assert str(rule.source.year) in rule.source.text()


def test_who_2021_uses_aqg_levels_and_interim_targets():
    who = resolve_profile(load_profiles(), "who-2021")
    pm25 = next(r for r in who.rules if r.id == "who-2021/pm25-24h")
    assert pm25.window == timedelta(hours=24)
    assert [(level.threshold, level.severity) for level in pm25.levels] == [
        (15, Severity.INFO),
        (25, Severity.WARNING),
        (37.5, Severity.MINOR),
        (50, Severity.MAJOR),
        (75, Severity.CRITICAL),
    ]
    assert pm25.clear_level == pytest.approx(13.5)  # default 10 % below the AQG level
    o3 = next(r for r in who.rules if r.id == "who-2021/o3-8h")
    assert o3.window == timedelta(hours=8) and o3.levels[0].threshold == 100


def test_eu_alert_thresholds_need_three_consecutive_hours():
    eu = resolve_profile(load_profiles(), "eu-2008-50")
    no2_alert = next(r for r in eu.rules if r.id == "eu-2008-50/no2-alert")
    assert no2_alert.levels[0].threshold == 400 and no2_alert.levels[0].severity is Severity.CRITICAL
    assert no2_alert.sustained_for == timedelta(hours=2)  # rolling 1 h mean held 2 h = 3 h of data


def test_water_rules_cover_ph_range_and_any_ecoli():
    water = resolve_profile(load_profiles(), "who-water-2022")
    ph = next(r for r in water.rules if r.id == "who-water-2022/ph")
    ecoli = next(r for r in water.rules if r.id == "who-water-2022/ecoli")
    assert ph.comparison is Comparison.OUTSIDE
    assert ph.holds(ph.levels[0], 6.4) and ph.holds(ph.levels[0], 8.6) and not ph.holds(ph.levels[0], 7.2)
    assert ecoli.comparison is Comparison.ANY_POSITIVE and ecoli.levels[0].severity is Severity.CRITICAL
    assert "2020/2184" in ecoli.source.standard


def test_operator_profile_file_is_merged_with_builtin(tmp_path):
    profiles = load_profiles([write(tmp_path, OPERATOR_PROFILE)])
    local = resolve_profile(profiles, "casablanca-local")
    assert local.rules[0].id == "casablanca-local/pm25-1h"
    assert local.rules[0].clear_after == timedelta(minutes=10)
    assert "who-2021@1" in profiles


def test_selector_without_version_picks_highest(tmp_path):
    v2 = OPERATOR_PROFILE.replace("version: 1", "version: 2")
    profiles = load_profiles([write(tmp_path, OPERATOR_PROFILE), write(tmp_path, v2, "v2.yaml")])
    assert resolve_profile(profiles, "casablanca-local").version == 2
    assert resolve_profile(profiles, "casablanca-local@1").version == 1


def test_duplicate_name_and_version_is_an_error(tmp_path):
    with pytest.raises(ProfileError, match="'casablanca-local' version 1 is already defined"):
        load_profiles([write(tmp_path, OPERATOR_PROFILE), write(tmp_path, OPERATOR_PROFILE, "again.yaml")])


def test_unknown_profile_selector_is_an_error():
    with pytest.raises(KeyError, match="unknown profile"):
        resolve_profile(load_profiles(), "who-1987")


def test_select_rules_combines_air_water_and_noise_profiles():
    rules = select_rules(load_profiles(), ["who-2021", "who-water-2022", "who-noise-2018"])
    ids = [rule.id for rule in rules]
    assert "who-2021/pm25-24h" in ids and "who-water-2022/ecoli" in ids and "who-noise-2018/laeq-1h" in ids
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        ("severity: minor}", r"rule 'pm25-1h' field 'levels\[0\].severity': unknown severity 'severe'"),
        ("measurand: pm25_ugm3", r"field 'measurand': unknown measurand 'pm2.5'"),
        ("window: 1h", r"rule 'pm25-1h' field 'window': expected a duration"),
        ("year: 2025", r"profile 'casablanca-local' field 'source.year'"),
        ("comparison: above", r"field 'comparison': unknown comparison 'over'"),
        ("clear_after: 10m", r"field 'clear_aftr': unknown field"),
    ],
)
def test_bad_file_error_names_profile_rule_and_field(tmp_path, broken, expected):
    replacement = {
        "severity: minor}": "severity: severe}",
        "measurand: pm25_ugm3": "measurand: pm2.5",
        "window: 1h": "window: an hour",
        "year: 2025": "year: last year",
        "comparison: above": "comparison: over",
        "clear_after: 10m": "clear_aftr: 10m",
    }[broken]
    path = write(tmp_path, OPERATOR_PROFILE.replace(broken, replacement))
    with pytest.raises(ProfileError, match=expected) as error:
        load_profiles([path])
    assert str(path) in str(error.value)


def test_levels_out_of_order_are_rejected(tmp_path):
    text = OPERATOR_PROFILE.replace("threshold: 100, severity: major", "threshold: 40, severity: major")
    with pytest.raises(ProfileError, match=r"levels\[1\].threshold': must rise with severity"):
        load_profiles([write(tmp_path, text)])


def test_clear_level_above_threshold_is_rejected(tmp_path):
    text = OPERATOR_PROFILE.replace("clear_after: 10m", "clear_after: 10m\n        clear_level: 60")
    with pytest.raises(ProfileError, match="field 'clear_level'"):
        load_profiles([write(tmp_path, text)])


def test_rule_without_any_citation_is_rejected(tmp_path):
    start = OPERATOR_PROFILE.index("    source:")
    end = OPERATOR_PROFILE.index("    rules:")
    text = OPERATOR_PROFILE[:start] + OPERATOR_PROFILE[end:]
    with pytest.raises(ProfileError, match="must cite a source"):
        load_profiles([write(tmp_path, text)])
