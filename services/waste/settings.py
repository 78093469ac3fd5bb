"""Settings of the waste service, one class per kind of process, each reading only what it needs.
Its own variables are MADINA_WASTE_*; the shared ones (MADINA_KAFKA_BOOTSTRAP, ...) come from
MadinaSettings, and the API's credentials and TLS from ServiceSettings.

- :class:`WastePorts`: where the service listens (the simulator and `madina up` need this);
- :class:`WasteSeedFiles`: which containers, depots and trucks the city has (every process that
  names a container or a depot reads the same files: the simulator, the map layers, the processor
  and the API);
- :class:`WasteProcessorSettings`: the stream processor (no credentials: it serves no API);
- :class:`WasteSettings`: the ingest, read and planning API.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field

from madina.eventtime import DEFAULT_MAX_AGE, DEFAULT_MAX_FUTURE_SKEW, EventTimeBounds
from madina.settings import MadinaSettings, ServiceSettings


class WastePorts(MadinaSettings):
    waste_http_port: int = Field(default=8084, ge=0, le=65535)
    waste_grpc_port: int = Field(default=50054, ge=0, le=65535)
    waste_processor_port: int = Field(
        default=8094, ge=0, le=65535, description="Stream processor's /healthz and /metrics."
    )
    waste_district_processor_port: int = Field(
        default=8114, ge=0, le=65535, description="District processor's /healthz and /metrics."
    )


class WasteSeedFiles(WastePorts):
    waste_containers_file: Path | None = Field(default=None, description="Container seed; built-in if unset.")
    waste_fleet_file: Path | None = Field(default=None, description="Depots and trucks; built-in if unset.")


class WasteProcessorSettings(WasteSeedFiles):
    waste_tick_interval_s: float = Field(default=60.0, gt=0, le=3600)
    waste_max_future_skew_s: float = Field(
        default=DEFAULT_MAX_FUTURE_SKEW.total_seconds(), ge=0, le=86_400,
        description="How far ahead of the clock a reading or tick may be dated (API and processor).",
    )
    waste_max_reading_age_s: float = Field(
        default=DEFAULT_MAX_AGE.total_seconds(), gt=0, le=10 * 365 * 86_400,
        description="How far behind the clock a reading may be dated (API and processor).",
    )

    def event_time_bounds(self) -> EventTimeBounds:
        return EventTimeBounds(
            max_future_skew=timedelta(seconds=self.waste_max_future_skew_s),
            max_age=timedelta(seconds=self.waste_max_reading_age_s),
        )


class WasteSettings(ServiceSettings, WasteProcessorSettings):
    waste_max_batch_readings: int = Field(default=5000, ge=1, le=100_000)
    waste_plan_time_limit_s: float = Field(
        default=7.0, gt=0, le=300, description="Time budget of one PlanCollection's routing search."
    )
    waste_round_interval_s: float = Field(
        default=0.0, ge=0, le=14 * 86_400,
        description="Plan every served depot's round this often, with the interval as horizon; 0: only on request.",
    )
