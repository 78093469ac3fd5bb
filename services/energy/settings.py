"""Settings of the energy service, one class per kind of process, each reading only what it needs.
Its own variables are MADINA_ENERGY_*; the shared ones come from MadinaSettings, and the API's
credentials and TLS from ServiceSettings.

- :class:`EnergyPorts`: where the service listens (the simulator and `madina up` need this);
- :class:`EnergyProcessorSettings`: the circuit and PV stream processors (no credentials);
- :class:`EnergySettings`: the ingest, control and read API.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pydantic import Field

from madina.settings import MadinaSettings, ServiceSettings
from services.energy.domain.config import EnergyConfig, load_config
from services.energy.domain.network import Network, load_network


class EnergyPorts(MadinaSettings):
    energy_http_port: int = Field(default=8083, ge=0, le=65535)
    energy_grpc_port: int = Field(default=50053, ge=0, le=65535)
    energy_processor_port: int = Field(
        default=8093, ge=0, le=65535, description="Circuit processor's /healthz and /metrics."
    )
    energy_pv_processor_port: int = Field(
        default=8103, ge=0, le=65535, description="PV processor's /healthz and /metrics."
    )
    energy_district_processor_port: int = Field(
        default=8113, ge=0, le=65535, description="District processor's /healthz and /metrics."
    )


class EnergyProcessorSettings(EnergyPorts):
    energy_network_file: Path | None = Field(default=None, description="Lighting and PV network; built-in if unset.")
    energy_config_file: Path | None = Field(
        default=None, description="Rule settings over the shipped data/energy.yaml (same schema)."
    )
    energy_grid_emission_factor_t_per_mwh: float | None = Field(
        default=None, gt=0, le=2.0, description="Grid CO2 factor for savings; the config file's if unset."
    )
    energy_command_timeout_s: float | None = Field(
        default=None, gt=0, le=86_400, description="A command unconfirmed this long raises command-timeout."
    )
    energy_tick_interval_s: float = Field(default=30.0, gt=0, le=3600)

    def network(self) -> Network:
        return load_network(self.energy_network_file, serving=self.cities)

    def config(self) -> EnergyConfig:
        config = load_config(self.energy_config_file) if self.energy_config_file else load_config()
        if self.energy_grid_emission_factor_t_per_mwh is not None:
            config = replace(config, grid=replace(
                config.grid, emission_factor_t_per_mwh=self.energy_grid_emission_factor_t_per_mwh))
        if self.energy_command_timeout_s is not None:
            config = replace(config, control=replace(config.control, command_timeout_s=self.energy_command_timeout_s))
        return config


class EnergySettings(ServiceSettings, EnergyProcessorSettings):
    energy_max_batch_reports: int = Field(default=5000, ge=1, le=100_000)
