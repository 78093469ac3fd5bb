"""Settings of the MQTT gateway (MADINA_DEVICES_*); the shared ones come from MadinaSettings.

The gateway's own MQTT credentials are required (a username and a password file) unless
MADINA_DEVICES_MQTT_ANONYMOUS=true says the broker needs none (local development only); TLS is
on when MADINA_DEVICES_MQTT_TLS=true or a CA file is set. Per-device credentials are the MQTT
broker's business (its password file / ACL, or the network server's), never the gateway's.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from madina.settings import MadinaSettings

DEFAULT_REGISTRY = Path(__file__).resolve().parent / "data" / "devices.yaml"


class DevicesPorts(MadinaSettings):
    devices_gateway_port: int = Field(default=8095, ge=0, le=65535, description="Gateway's /healthz and /metrics.")
    devices_mqtt_host: str = Field(default="127.0.0.1", description="MQTT broker the gateway subscribes to.")
    devices_mqtt_port: int = Field(default=1883, ge=1, le=65535)


class DevicesSettings(DevicesPorts):
    devices_registry_file: Path = Field(default=DEFAULT_REGISTRY, description="Device registry (YAML or JSON).")
    devices_mqtt_protocol: Literal["5", "3.1.1"] = Field(
        default="5",
        description="5 lets the gateway bound unacknowledged messages (receive maximum); 3.1.1 costs about "
                    "the same CPU per message (bench.devices) but then the broker's max_inflight_messages "
                    "must allow a whole batch in flight.")
    devices_mqtt_client_id: str = Field(
        default="madina-gateway", min_length=1, max_length=64,
        description="Persistent-session id: a restarted gateway gets what arrived while it was down.")
    devices_mqtt_username: str | None = None
    devices_mqtt_password_file: Path | None = Field(default=None, description="File holding the gateway's password.")
    devices_mqtt_anonymous: bool = Field(default=False, description="Connect without credentials (development).")
    devices_mqtt_tls: bool = False
    devices_mqtt_tls_ca_file: Path | None = Field(default=None, description="CA of the broker's certificate.")
    devices_mqtt_tls_cert_file: Path | None = Field(default=None, description="Client certificate (mutual TLS).")
    devices_mqtt_tls_key_file: Path | None = None
    devices_mqtt_shared_group: str | None = Field(
        default=None, description="Subscribe as $share/<group>/... so several gateways split the devices.")
    devices_mqtt_receive_maximum: int = Field(
        default=2000, ge=1, le=65535, description="Unacknowledged messages the broker may send at once (MQTT 5).")
    devices_batch_max: int = Field(default=1000, ge=1, le=100_000, description="Messages handled together.")
    devices_batch_wait_ms: float = Field(default=5.0, ge=0, le=1000, description="Wait for a batch to fill.")
    devices_max_batch_items: int = Field(default=5000, ge=1, le=100_000, description="Readings in one message.")
    devices_reconnect_min_s: float = Field(default=0.2, gt=0, le=60)
    devices_reconnect_max_s: float = Field(default=30.0, gt=0, le=600)

    @model_validator(mode="after")
    def _credentials_or_explicitly_anonymous(self) -> DevicesSettings:
        if not self.devices_mqtt_anonymous and not (self.devices_mqtt_username and self.devices_mqtt_password_file):
            raise ValueError(
                "MADINA_DEVICES_MQTT_USERNAME and MADINA_DEVICES_MQTT_PASSWORD_FILE are required "
                "unless MADINA_DEVICES_MQTT_ANONYMOUS=true")
        if bool(self.devices_mqtt_tls_cert_file) != bool(self.devices_mqtt_tls_key_file):
            raise ValueError("MADINA_DEVICES_MQTT_TLS_CERT_FILE and MADINA_DEVICES_MQTT_TLS_KEY_FILE go together")
        for path in (self.devices_mqtt_password_file, self.devices_mqtt_tls_ca_file, self.devices_mqtt_tls_cert_file,
                     self.devices_mqtt_tls_key_file, self.devices_registry_file):
            if path is not None and not path.is_file():
                raise ValueError(f"file {path} does not exist")
        return self

    def mqtt_password(self) -> str | None:
        if self.devices_mqtt_anonymous or self.devices_mqtt_password_file is None:
            return None
        return self.devices_mqtt_password_file.read_text(encoding="utf-8").strip()

    def mqtt_tls_context(self) -> ssl.SSLContext | None:
        if not (self.devices_mqtt_tls or self.devices_mqtt_tls_ca_file):
            return None
        cafile = str(self.devices_mqtt_tls_ca_file) if self.devices_mqtt_tls_ca_file else None
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
        if self.devices_mqtt_tls_cert_file and self.devices_mqtt_tls_key_file:
            context.load_cert_chain(self.devices_mqtt_tls_cert_file, self.devices_mqtt_tls_key_file)
        return context


class DevicesSimulatorSettings(DevicesPorts):
    """The simulated MQTT devices' own broker credentials (`madina up` writes them; none: anonymous)."""

    devices_simulator_username: str | None = None
    devices_simulator_password_file: Path | None = None
    devices_registry_file: Path = Field(default=DEFAULT_REGISTRY, description="Device registry (YAML or JSON).")
