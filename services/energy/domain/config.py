"""Energy rule settings: thresholds, metering, PV expectation and control, from ``data/energy.yaml``.

Data, not code: the defaults below are the values in the file (where their sources are cited),
and an operator file with the same schema overrides any of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from madina.yamlfile import parse_yaml

CONFIG_PATH = Path(__file__).resolve().parent.parent / "data" / "energy.yaml"


class ConfigError(ValueError):
    """The settings file is malformed; the message names the section and key."""


@dataclass(frozen=True)
class GridConfig:
    # Morocco, IFI harmonized combined margin for energy efficiency; data/energy.yaml cites it.
    emission_factor_t_per_mwh: float = 0.547
    emission_factor_source: str = ""


@dataclass(frozen=True)
class LightingConfig:
    voltage_min_v: float = 198.0
    voltage_max_v: float = 242.0
    voltage_clear_margin_v: float = 2.0
    out_floor_fraction: float = 0.2
    out_floor_min_w: float = 2.0
    day_on_floor_w: float = 5.0
    over_power_tolerance: float = 0.15
    over_power_margin_w: float = 3.0
    raise_after_readings: int = 2
    clear_after_s: float = 600.0
    day_margin_s: float = 1800.0
    circuit_dark_min_reporting: float = 0.5
    circuit_window_s: float = 900.0
    gap_factor: float = 3.0


@dataclass(frozen=True)
class MeteringConfig:
    hour_lateness_s: float = 900.0
    max_hold_s: float = 1800.0
    implausible_factor: float = 2.0


@dataclass(frozen=True)
class PvConfig:
    ratio_threshold: float = 0.5
    clear_ratio: float = 0.7
    sustained_readings: int = 6
    clear_after_s: float = 900.0
    min_clear_poa_wm2: float = 300.0
    min_elevation_deg: float = 15.0
    min_expected_fraction: float = 0.05
    system_losses: float = 0.14
    gamma_pdc_per_c: float = -0.004
    inverter_efficiency: float = 0.96
    assumed_air_temp_c: float = 25.0
    assumed_wind_m_s: float = 1.0
    slot_s: int = 300


@dataclass(frozen=True)
class ControlConfig:
    dimming_tolerance_pct: float = 5.0
    confirm_fraction: float = 0.8
    command_timeout_s: float = 900.0


@dataclass(frozen=True)
class EnergyConfig:
    grid: GridConfig = field(default_factory=GridConfig)
    lighting: LightingConfig = field(default_factory=LightingConfig)
    metering: MeteringConfig = field(default_factory=MeteringConfig)
    pv: PvConfig = field(default_factory=PvConfig)
    control: ControlConfig = field(default_factory=ControlConfig)

    @property
    def emission_t_per_kwh(self) -> float:
        return self.grid.emission_factor_t_per_mwh / 1000.0


def load_config(path: Path | None = None, base: EnergyConfig | None = None) -> EnergyConfig:
    """Settings from ``path`` (default: the shipped file) over ``base`` (default: the dataclass defaults)."""
    source = path or CONFIG_PATH
    try:
        document = parse_yaml(source.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{source}: cannot read energy settings: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: expected a mapping of sections")
    config = base or EnergyConfig()
    sections = {f.name: getattr(config, f.name) for f in fields(config)}
    for name, raw in document.items():
        if name not in sections:
            raise ConfigError(f"{source}: unknown section {name!r} (known: {', '.join(sections)})")
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: section {name!r} must be a mapping")
        sections[name] = _override(source, name, sections[name], raw)
    return replace(config, **sections)


def _override(source: Path, section: str, current: Any, raw: dict[str, Any]) -> Any:
    known = {f.name: f for f in fields(current)}
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(f"{source}: {section}.{key}: unknown key")
        default = getattr(current, key)
        if isinstance(default, str):
            if not isinstance(value, str):
                raise ConfigError(f"{source}: {section}.{key}: expected text, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{source}: {section}.{key}: expected a number, got {value!r}")
        elif isinstance(default, int) and not isinstance(value, int):
            raise ConfigError(f"{source}: {section}.{key}: expected a whole number, got {value!r}")
        else:
            value = type(default)(value)
        changes[key] = value
    return replace(current, **changes)
