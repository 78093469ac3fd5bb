"""Settings of the environment service, one class per kind of process, each reading only what it
needs. Its own variables are MADINA_ENVIRONMENT_*; the shared ones (MADINA_KAFKA_BOOTSTRAP, ...)
come from MadinaSettings, and the API's credentials and TLS from ServiceSettings.

- :class:`EnvironmentPorts`: where the service listens (the simulator and `madina up` need this);
- :class:`EnvironmentProcessorSettings`: the stream processor (no credentials: it serves no API);
- :class:`EnvironmentSettings`: the ingest and gRPC API.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field

from madina.eventtime import DEFAULT_MAX_AGE, DEFAULT_MAX_FUTURE_SKEW, EventTimeBounds
from madina.settings import MadinaSettings, ServiceSettings


class EnvironmentPorts(MadinaSettings):
    environment_http_port: int = Field(default=8081, ge=0, le=65535)
    environment_grpc_port: int = Field(default=50051, ge=0, le=65535)
    environment_processor_port: int = Field(
        default=8091, ge=0, le=65535, description="Stream processor's /healthz and /metrics."
    )


class EnvironmentProcessorSettings(EnvironmentPorts):
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
    environment_tick_interval_s: float = Field(default=15.0, gt=0, le=3600)
    environment_max_future_skew_s: float = Field(
        default=DEFAULT_MAX_FUTURE_SKEW.total_seconds(), ge=0, le=86_400,
        description="How far ahead of the clock an observation or tick may be dated (API and processor).",
    )
    environment_max_observation_age_s: float = Field(
        default=DEFAULT_MAX_AGE.total_seconds(), gt=0, le=10 * 365 * 86_400,
        description="How far behind the clock an observation may be dated (API and processor).",
    )

    def event_time_bounds(self) -> EventTimeBounds:
        return EventTimeBounds(
            max_future_skew=timedelta(seconds=self.environment_max_future_skew_s),
            max_age=timedelta(seconds=self.environment_max_observation_age_s),
        )


class EnvironmentSettings(ServiceSettings, EnvironmentProcessorSettings):
    environment_max_batch_observations: int = Field(default=5000, ge=1, le=100_000)
