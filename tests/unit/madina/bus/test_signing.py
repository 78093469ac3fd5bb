"""Only the platform's producers can publish on ``alerts.v1`` (madina.bus.signing)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from madina.bus import ALERTS, KPIS
from madina.bus.codec import InvalidRecord, decode, encode, standard_headers
from madina.bus.signing import HEADER_SIGNATURE, RecordSigner, configured_signer, signed
from madina.localsecrets import ensure_local_secrets
from madina.settings import MadinaSettings
from madina_proto.alerts.v1 import alerts_pb2

SIGNER = RecordSigner(b"s" * 32)


def _record(alert_id: str = "a-1", revision: int = 1) -> tuple[bytes, bytes]:
    return alert_id.encode(), encode(alerts_pb2.AlertEvent(alert_id=alert_id, revision=revision, domain="x"))


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordSigner]:
    key_file = tmp_path / "key"
    key_file.write_bytes(b"s" * 32 + b"\n")
    monkeypatch.setenv("MADINA_ALERT_SIGNING_KEY_FILE", str(key_file))
    configured_signer.cache_clear()
    yield SIGNER
    configured_signer.cache_clear()


def test_a_record_signed_with_the_key_is_accepted() -> None:
    key, value = _record()
    assert SIGNER.problem(ALERTS.name, key, value, SIGNER.headers(ALERTS.name, key, value)) is None


def test_an_unsigned_alert_is_refused_with_the_reason() -> None:
    key, value = _record()
    assert "unsigned record on alerts.v1" in str(SIGNER.problem(ALERTS.name, key, value, []))


def test_a_signature_of_another_key_is_refused() -> None:
    key, value = _record()
    forger = RecordSigner(b"f" * 32)
    assert "forged or altered" in str(SIGNER.problem(ALERTS.name, key, value, forger.headers(ALERTS.name, key, value)))


def test_a_genuine_signature_does_not_cover_a_raised_revision_or_another_key() -> None:
    key, value = _record(revision=2)
    headers = SIGNER.headers(ALERTS.name, key, value)
    _, raised = _record(revision=1_000_000)
    assert SIGNER.problem(ALERTS.name, key, raised, headers) is not None
    assert SIGNER.problem(ALERTS.name, b"a-2", value, headers) is not None


def test_two_signatures_on_one_record_are_refused() -> None:
    key, value = _record()
    headers = SIGNER.headers(ALERTS.name, key, value) * 2
    assert "2 signatures" in str(SIGNER.problem(ALERTS.name, key, value, headers))


def test_topics_that_are_not_signed_need_no_signature() -> None:
    assert SIGNER.headers(KPIS.name, b"k", b"v") == []
    assert SIGNER.problem(KPIS.name, b"k", b"v", []) is None


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        RecordSigner(b"short")


def test_decode_refuses_a_forged_alert_when_a_key_is_configured(configured: RecordSigner) -> None:
    key, value = _record()
    headers = standard_headers(ALERTS, "test")
    with pytest.raises(InvalidRecord, match="unsigned record"):
        decode(ALERTS, value, headers, key)
    message = decode(ALERTS, value, signed(ALERTS.name, key, value, headers), key)
    assert message.alert_id == "a-1"
    assert any(name == HEADER_SIGNATURE for name, _ in signed(ALERTS.name, key, value, headers))


def test_without_a_key_nothing_is_signed_or_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MADINA_ALERT_SIGNING_KEY_FILE", raising=False)
    configured_signer.cache_clear()
    try:
        key, value = _record()
        headers = standard_headers(ALERTS, "test")
        assert signed(ALERTS.name, key, value, headers) == headers
        assert decode(ALERTS, value, headers, key).alert_id == "a-1"
    finally:
        configured_signer.cache_clear()


def test_local_secrets_hold_a_private_signing_key_kept_across_starts(tmp_path: Path) -> None:
    settings = MadinaSettings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    first = ensure_local_secrets(settings).alert_signing_key_file
    assert first.stat().st_mode & 0o777 == 0o600
    RecordSigner.from_file(first)  # long enough
    assert ensure_local_secrets(settings).alert_signing_key_file.read_bytes() == first.read_bytes()
