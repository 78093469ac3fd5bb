"""The MADINA_KAFKA_* security settings reach every Kafka client Madina builds: the producer,
the consumer loop, the topic reader, the admin client and the faust app."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from madina.settings import MadinaSettings, SettingsError, kafka_security_options


@pytest.fixture
def sasl_ssl(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    password = tmp_path / "kafka-password"
    password.write_text("s3cret\n")
    monkeypatch.setenv("MADINA_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("MADINA_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("MADINA_KAFKA_SASL_USERNAME", "madina")
    monkeypatch.setenv("MADINA_KAFKA_SASL_PASSWORD_FILE", str(password))


def test_plaintext_adds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MADINA_KAFKA_SECURITY_PROTOCOL", raising=False)
    assert kafka_security_options() == {}


def test_sasl_ssl_options_carry_protocol_mechanism_user_password_and_tls(sasl_ssl: None) -> None:
    options = kafka_security_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    assert options["sasl_plain_username"] == "madina"
    assert options["sasl_plain_password"] == "s3cret"
    assert options["ssl_context"].verify_mode.name == "CERT_REQUIRED"


def test_sasl_without_a_password_file_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MADINA_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.delenv("MADINA_KAFKA_SASL_PASSWORD_FILE", raising=False)
    with pytest.raises(SettingsError, match="MADINA_KAFKA_SASL_PASSWORD_FILE"):
        kafka_security_options()


class Captured(Exception):
    """Raised by a fake client class once it has seen its keyword arguments."""


def capture(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def fake(*args: object, **kwargs: Any) -> None:
        seen.update(kwargs)
        raise Captured

    monkeypatch.setattr(module, name, fake)
    return seen


def test_every_client_factory_passes_the_options(sasl_ssl: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from madina.bus import admin, consumer, producer, reader
    from madina.bus.topics import ALERTS

    builds = [
        (producer, "AIOKafkaProducer", lambda: producer.EventProducer("kafka:9092", source="test")),
        (admin, "AIOKafkaAdminClient", lambda: admin.admin_client("kafka:9092", request_timeout_ms=1000)),
        (
            consumer,
            "AIOKafkaConsumer",
            lambda: consumer.EventConsumer(
                "kafka:9092", [ALERTS], group_id="g", handler=None, producer=None  # type: ignore[arg-type]
            ),
        ),
        (reader, "AIOKafkaConsumer", lambda: asyncio.run(reader.read_topic("kafka:9092", ALERTS, print))),
    ]
    for module, name, build in builds:
        seen = capture(monkeypatch, module, name)
        with pytest.raises(Captured):
            build()
        assert seen["security_protocol"] == "SASL_SSL", module.__name__
        assert seen["sasl_plain_password"] == "s3cret", module.__name__
        assert "ssl_context" in seen, module.__name__


def test_the_faust_app_gets_the_same_credentials(sasl_ssl: None) -> None:
    from madina.streams import create_stream_app, faust_broker_credentials

    settings = MadinaSettings(kafka_bootstrap="kafka:9092")
    credentials = faust_broker_credentials(settings)
    assert credentials is not None
    assert credentials.protocol.value == "SASL_SSL"  # type: ignore[attr-defined]
    assert credentials.mechanism.value == "SCRAM-SHA-256"  # type: ignore[attr-defined]
    assert credentials.username == "madina"  # type: ignore[attr-defined]
    app = create_stream_app("test-security", settings, web_port=8091)
    assert app.conf.broker_credentials.username == "madina"
