"""Settings of the mobility service, one class per kind of process, each reading only what it
needs. Its own variables are MADINA_MOBILITY_*; the shared ones come from MadinaSettings, and the
API's credentials and TLS from ServiceSettings.

- :class:`MobilityPorts`: where the service listens (the simulator and `madina up` need this);
- :class:`MobilityProcessorSettings`: the stream processor (feeds and thresholds; no credentials);
- :class:`MobilitySettings`: the ingest, feeds-out and gRPC API.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field

from madina.settings import MadinaSettings, ServiceSettings
from services.mobility.domain.evaluator import MobilityConfig
from services.mobility.domain.parking import CAR_PARKS, ParkingPolicy
from services.mobility.domain.tickets import FraudPolicy

SAMPLE_FEEDS = Path(__file__).parent / "data" / "gtfs"
_DEFAULTS = MobilityConfig()


class MobilityPorts(MadinaSettings):
    mobility_http_port: int = Field(default=8082, ge=0, le=65535)
    mobility_grpc_port: int = Field(default=50052, ge=0, le=65535)
    mobility_processor_port: int = Field(
        default=8092, ge=0, le=65535, description="Stream processor's /healthz and /metrics."
    )


class MobilityProcessorSettings(MobilityPorts):
    mobility_gtfs_feeds: list[Path] = Field(
        default=[SAMPLE_FEEDS / "berkane", SAMPLE_FEEDS / "casablanca"],
        description="GTFS Schedule feeds (JSON list of directories or zips); a broken feed stops start-up.",
    )
    mobility_tick_interval_s: float = Field(default=15.0, gt=0, le=3600)
    mobility_raise_delay_s: int = Field(default=_DEFAULTS.raise_delay_s, ge=1)
    mobility_major_delay_s: int = Field(default=_DEFAULTS.major_delay_s, ge=1)
    mobility_clear_delay_s: int = Field(default=_DEFAULTS.clear_delay_s, ge=0)
    mobility_consecutive_updates: int = Field(default=_DEFAULTS.consecutive, ge=1, le=100)
    mobility_route_late_count: int = Field(default=_DEFAULTS.route_late_count, ge=2)
    mobility_bunching_fraction: float = Field(default=_DEFAULTS.bunching_fraction, gt=0, lt=1)
    mobility_vehicle_report_interval_s: float = Field(
        default=_DEFAULTS.vehicle_report_interval.total_seconds(), gt=0
    )
    mobility_gap_factor: float = Field(default=_DEFAULTS.gap_factor, ge=1)
    mobility_car_parks_file: Path = Field(
        default=CAR_PARKS, description="Car-park registry (CSV: car_park_id, display_name, city_id, lat, lon, "
                                       "capacity_spaces); counts for other car parks are refused.")
    mobility_fraud_max_speed_kmh: float = Field(default=FraudPolicy().max_speed_kmh, gt=0)
    mobility_fraud_min_distance_m: float = Field(default=FraudPolicy().min_distance_m, ge=0)
    mobility_car_park_full_for_s: float = Field(
        default=ParkingPolicy().full_for.total_seconds(), ge=0,
        description="How long a car park stays full before the car-park-full alert.")
    mobility_car_park_silent_after_s: float = Field(
        default=ParkingPolicy().silent_after.total_seconds(), gt=0,
        description="How long a car park may send no count before its data-gap alert.")

    def rules(self) -> MobilityConfig:
        return MobilityConfig(
            raise_delay_s=self.mobility_raise_delay_s,
            major_delay_s=self.mobility_major_delay_s,
            clear_delay_s=self.mobility_clear_delay_s,
            consecutive=self.mobility_consecutive_updates,
            route_late_count=self.mobility_route_late_count,
            bunching_fraction=self.mobility_bunching_fraction,
            vehicle_report_interval=timedelta(seconds=self.mobility_vehicle_report_interval_s),
            gap_factor=self.mobility_gap_factor,
        )

    def fraud_policy(self) -> FraudPolicy:
        return FraudPolicy(max_speed_kmh=self.mobility_fraud_max_speed_kmh,
                           min_distance_m=self.mobility_fraud_min_distance_m)

    def parking_policy(self) -> ParkingPolicy:
        return ParkingPolicy(full_for=timedelta(seconds=self.mobility_car_park_full_for_s),
                             silent_after=timedelta(seconds=self.mobility_car_park_silent_after_s))


class MobilitySettings(ServiceSettings, MobilityProcessorSettings):
    mobility_max_feed_entities: int = Field(default=20_000, ge=1, le=1_000_000)
    mobility_gtfs_rt_urls: list[str] = Field(
        default=[], description="Producers' GTFS-Realtime feeds to poll (JSON list of http(s) URLs); empty: push only.")
    mobility_gtfs_rt_poll_interval_s: float = Field(default=15.0, gt=0, le=3600)
    mobility_gtfs_rt_max_backoff_s: float = Field(
        default=300.0, gt=0, le=86_400, description="Longest wait between polls of a failing feed.")
