"""Settings of the environment service. Its own variables are MADINA_ENVIRONMENT_*; the shared ones
(MADINA_KAFKA_BOOTSTRAP, MADINA_CREDENTIALS_FILE, TLS, ...) come from ServiceSettings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from madina.settings import ServiceSettings


class EnvironmentSettings(ServiceSettings):
    environment_http_port: int = Field(default=8081, ge=0, le=65535)
    environment_grpc_port: int = Field(default=50051, ge=0, le=65535)
    environment_processor_port: int = Field(
        default=8091, ge=0, le=65535, description="Stream processor's /healthz and /metrics."
    )
    environment_profiles: list[str] = Field(
        default=["who-2021", "who-water-2022", "who-noise-2018"],
        description="Threshold profiles in force (JSON list of 'name' or 'name@version'), e.g. swap in eu-2024-2881.",
    )
    environment_extra_profile_files: list[Path] = Field(
        default_factory=list, description="Operator-added profile YAML files (JSON list of paths)."
    )
    environment_stations_file: Path | None = Field(
        default=None, description="Station seed; built-in if unset."
    )
    environment_max_batch_observations: int = Field(default=5000, ge=1, le=100_000)
    environment_tick_interval_s: float = Field(default=15.0, gt=0, le=3600)
