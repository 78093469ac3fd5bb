from pathlib import Path

import pytest
from pydantic import Field

from madina.settings import MadinaSettings, SettingsError, load_settings


class _ServiceSettings(MadinaSettings):
    required_token_file: str = Field(description="no default: start-up must stop without it")
    http_port: int = Field(default=8081, ge=1, le=65535)


def test_missing_required_setting_stops_startup_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MADINA_REQUIRED_TOKEN_FILE", raising=False)
    with pytest.raises(SettingsError) as raised:
        load_settings(_ServiceSettings)
    assert "MADINA_REQUIRED_TOKEN_FILE" in str(raised.value)


def test_invalid_value_names_the_variable_and_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MADINA_REQUIRED_TOKEN_FILE", "/run/secrets/t")
    monkeypatch.setenv("MADINA_HTTP_PORT", "70000")
    with pytest.raises(SettingsError) as raised:
        load_settings(_ServiceSettings)
    message = str(raised.value)
    assert "MADINA_HTTP_PORT" in message and "70000" in message
    assert "MADINA_REQUIRED_TOKEN_FILE" not in message


def test_unset_bootstrap_means_embedded_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MADINA_KAFKA_BOOTSTRAP", raising=False)
    settings = load_settings(MadinaSettings)
    assert settings.uses_embedded_broker
    assert settings.bootstrap_servers == "127.0.0.1:9092"


def test_configured_bootstrap_is_used_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MADINA_KAFKA_BOOTSTRAP", "kafka-1:9092,kafka-2:9092")
    settings = load_settings(MadinaSettings)
    assert not settings.uses_embedded_broker
    assert settings.bootstrap_servers == "kafka-1:9092,kafka-2:9092"


def test_default_database_is_sqlite_under_the_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MADINA_DATABASE_URL", raising=False)
    monkeypatch.delenv("MADINA_DATA_DIR", raising=False)
    from services.operations.settings import OperationsStoreSettings

    assert load_settings(OperationsStoreSettings).database_url == "sqlite:///data/madina.db"
    monkeypatch.setenv("MADINA_DATA_DIR", "/var/lib/madina")
    assert load_settings(OperationsStoreSettings).database_url == "sqlite:////var/lib/madina/madina.db"


def test_service_without_tls_stops_unless_explicitly_insecure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from madina.settings import ServiceSettings

    credentials = tmp_path / "credentials.yaml"
    credentials.write_text("principals: {}\n")
    monkeypatch.setenv("MADINA_CREDENTIALS_FILE", str(credentials))
    monkeypatch.delenv("MADINA_GRPC_INSECURE", raising=False)
    with pytest.raises(SettingsError, match="MADINA_GRPC_TLS_CERT_FILE"):
        load_settings(ServiceSettings)
    monkeypatch.setenv("MADINA_GRPC_INSECURE", "true")
    assert load_settings(ServiceSettings).grpc_insecure


def test_service_with_missing_credentials_file_names_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from madina.settings import ServiceSettings

    monkeypatch.setenv("MADINA_CREDENTIALS_FILE", str(tmp_path / "absent.yaml"))
    monkeypatch.setenv("MADINA_GRPC_INSECURE", "true")
    with pytest.raises(SettingsError, match=r"absent\.yaml"):
        load_settings(ServiceSettings)


def test_cities_setting_accepts_known_city_ids_and_names_an_unknown_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MADINA_CITIES", '["berkane"]')
    assert load_settings(MadinaSettings).cities == ["berkane"]

    monkeypatch.setenv("MADINA_CITIES", '["berkane", "atlantis"]')
    with pytest.raises(SettingsError) as raised:
        load_settings(MadinaSettings)
    assert "atlantis" in str(raised.value)
