"""One settings base for every Madina process.

Values come from the environment (prefix ``MADINA_``), then an optional ``.env`` file, then
defaults. Secrets are never defaults: they come from the environment or from files named by it.
A service extends :class:`MadinaSettings` with its own fields and loads it with
:func:`load_settings`, which turns validation errors into one message naming the variables.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "MADINA_"
EMBEDDED_BROKER_HOST = "127.0.0.1"
EMBEDDED_BROKER_PORT = 9092


class KafkaClientSettings(BaseSettings):
    """How every Kafka client (producer, consumer, admin, faust) connects and authenticates.

    Its own class so the client factories, which are handed only a bootstrap string, can read the
    security settings without the rest of a process's settings (see :func:`kafka_security_options`).
    The password is a file, never a value, like every other secret.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    kafka_bootstrap: str | None = Field(
        default=None,
        description="host:port[,host:port] of Apache Kafka; unset means the embedded broker.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password_file: Path | None = Field(default=None, description="File holding the SASL password.")
    kafka_ssl_cafile: Path | None = Field(
        default=None, description="CA bundle that signed the brokers' certificates; unset: the system's CAs."
    )
    alert_signing_key_file: Path | None = Field(
        default=None,
        description="Secret key (32+ bytes) signing alerts.v1 records; set, unsigned or forged alerts are refused.",
    )

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> KafkaClientSettings:
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password_file
        ):
            raise ValueError(
                f"MADINA_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "MADINA_KAFKA_SASL_USERNAME and MADINA_KAFKA_SASL_PASSWORD_FILE"
            )
        for path in (self.kafka_sasl_password_file, self.kafka_ssl_cafile, self.alert_signing_key_file):
            if path is not None and not path.is_file():
                raise ValueError(f"file {path} does not exist")
        return self

    def kafka_client_options(self) -> dict[str, Any]:
        """aiokafka keyword arguments for TLS and SASL; empty for PLAINTEXT (the embedded broker)."""
        protocol = self.kafka_security_protocol
        if protocol == "PLAINTEXT":
            return {}
        options: dict[str, Any] = {"security_protocol": protocol}
        if protocol in ("SSL", "SASL_SSL"):
            cafile = str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None
            options["ssl_context"] = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
        if protocol.startswith("SASL_"):
            assert self.kafka_sasl_password_file is not None  # checked by _sasl_needs_credentials
            options["sasl_mechanism"] = self.kafka_sasl_mechanism
            options["sasl_plain_username"] = self.kafka_sasl_username
            options["sasl_plain_password"] = self.kafka_sasl_password_file.read_text(encoding="utf-8").strip()
        return options


def kafka_security_options() -> dict[str, Any]:
    """The security keyword arguments every aiokafka client takes, from MADINA_KAFKA_* settings."""
    return load_settings(KafkaClientSettings).kafka_client_options()


class MadinaSettings(KafkaClientSettings):
    """Settings every process shares."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Field(default=Path("data"), description="Where local state lives.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    debug_trace: bool = Field(default=False, description="Stream processors log a line per record (tests).")
    bind_host: str = Field(default="127.0.0.1", description="Interface HTTP, gRPC and processor web servers listen on.")
    embedded_broker_port: int = Field(default=EMBEDDED_BROKER_PORT, ge=1, le=65535)
    topic_partitions: int = Field(
        default=4, ge=1, le=256, description="Partitions of every topic Madina creates."
    )
    topic_replication_factor: int = Field(default=1, ge=1, le=16)
    topic_config_reconcile: bool = Field(
        default=True,
        description="At start-up, set an existing topic's declared configs (cleanup.policy, retention.ms, ...) "
        "to the registry's values; false (topics managed by other tooling) only logs the differences.",
    )
    cities: list[str] = Field(
        default_factory=list,
        description="City ids this deployment serves (JSON list); empty serves every city in the seed data.",
    )

    @model_validator(mode="after")
    def _known_cities(self) -> MadinaSettings:
        if self.cities:
            from madina.geo import load_cities

            unknown = sorted(set(self.cities) - set(load_cities()))
            if unknown:
                raise ValueError(f"MADINA_CITIES: unknown city id(s) {unknown}")
        return self

    @property
    def bootstrap_servers(self) -> str:
        """Where Kafka clients connect: the configured cluster, or the embedded broker."""
        return self.kafka_bootstrap or f"{EMBEDDED_BROKER_HOST}:{self.embedded_broker_port}"

    @property
    def uses_embedded_broker(self) -> bool:
        return not self.kafka_bootstrap


class ServiceSettings(MadinaSettings):
    """Settings of a process that serves HTTP or gRPC: credentials and TLS are required, never defaulted."""

    credentials_file: Path = Field(
        description="YAML/JSON file of principals (token SHA-256 and scopes); see madina.auth."
    )
    grpc_tls_cert_file: Path | None = None
    grpc_tls_key_file: Path | None = None
    grpc_insecure: bool = Field(default=False, description="Serve gRPC without TLS (tests, sidecar TLS).")
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    grpc_tls_client_ca_file: Path | None = Field(
        default=None, description="CA of partner client certificates; set, gRPC requires mutual TLS."
    )
    grpc_tls_crl_file: Path | None = Field(
        default=None,
        description="CRL (PEM or DER) of that CA; RPCs from certificates it lists are refused. Re-read on change.",
    )
    http_tls_cert_file: Path | None = Field(default=None, description="HTTP serves TLS with this and the key.")
    http_tls_key_file: Path | None = None
    rate_limit_per_s: float = Field(
        default=50.0, gt=0, description="Calls a second per principal without a rate_limit of its own."
    )
    rate_limit_burst: int = Field(default=200, ge=1)
    auth_failures_per_s: float = Field(
        default=0.2, gt=0, description="Failed authentications a second per client address, after the burst."
    )
    auth_failures_burst: int = Field(default=20, ge=1)

    @model_validator(mode="after")
    def _tls_or_explicitly_insecure(self) -> ServiceSettings:
        if not self.grpc_insecure and not (self.grpc_tls_cert_file and self.grpc_tls_key_file):
            raise ValueError(
                "MADINA_GRPC_TLS_CERT_FILE and MADINA_GRPC_TLS_KEY_FILE are required "
                "unless MADINA_GRPC_INSECURE=true"
            )
        if self.grpc_insecure and self.grpc_tls_client_ca_file:
            raise ValueError("MADINA_GRPC_TLS_CLIENT_CA_FILE needs TLS; unset MADINA_GRPC_INSECURE")
        if self.grpc_tls_crl_file and not self.grpc_tls_client_ca_file:
            raise ValueError("MADINA_GRPC_TLS_CRL_FILE needs MADINA_GRPC_TLS_CLIENT_CA_FILE (the CA that signed it)")
        if bool(self.http_tls_cert_file) != bool(self.http_tls_key_file):
            raise ValueError("MADINA_HTTP_TLS_CERT_FILE and MADINA_HTTP_TLS_KEY_FILE go together")
        for path in (
            self.credentials_file,
            self.grpc_tls_cert_file,
            self.grpc_tls_key_file,
            self.grpc_tls_client_ca_file,
            self.grpc_tls_crl_file,
            self.http_tls_cert_file,
            self.http_tls_key_file,
        ):
            if path is not None and not path.is_file():
                raise ValueError(f"file {path} does not exist")
        return self


class SettingsError(SystemExit):
    """Start-up stops with this when configuration is invalid; its message names the variables."""


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_settings(settings_class: type[SettingsT], **overrides: object) -> SettingsT:
    """Build settings, turning pydantic's error into one readable line per bad variable."""
    try:
        return settings_class(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise SettingsError(describe_settings_error(settings_class, error)) from None


def describe_settings_error(settings_class: type[BaseSettings], error: ValidationError) -> str:
    prefix = settings_class.model_config.get("env_prefix", "")
    lines = [f"invalid configuration ({settings_class.__name__}):"]
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"])
        if not field:  # a check across several variables names them in its message
            lines.append(f"  {problem['msg'].removeprefix('Value error, ')}")
            continue
        variable = f"{prefix}{field}".upper()
        value = problem.get("input")
        shown = "" if problem["type"] == "missing" else f" (got {value!r})"
        lines.append(f"  {variable}: {problem['msg']}{shown}")
    return "\n".join(lines)
