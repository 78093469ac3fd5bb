"""`madina agency add | revoke | list` on a credentials file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from madina.agency import parse_expiry
from madina.auth import hash_token, load_credentials
from madina.cli import main


def agency(path: Path, *argv: str) -> int:
    return main(["agency", "--file", str(path), *argv])


def test_add_prints_the_token_once_and_stores_only_its_hash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "credentials.yaml"

    assert agency(path, "add", "casa-transport", "--scopes", "alerts:read,alerts:ack", "--rate", "5") == 0

    out, err = capsys.readouterr()
    token = out.strip()
    assert "shown only this once" in err and token not in err
    assert token not in path.read_text()
    principal = load_credentials(path).principals["casa-transport"]
    assert principal.token_sha256 == hash_token(token)
    assert principal.scopes == {"alerts:read", "alerts:ack"}
    assert (principal.rate_limit.per_s, principal.rate_limit.burst) == (5.0, 10)  # type: ignore[union-attr]


def test_revoke_then_list_shows_who_was_revoked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "credentials.yaml"
    agency(path, "add", "a", "--scopes", "alerts:read")
    agency(path, "add", "b", "--scopes", "environment:read", "--expires", "2020-01-01T00:00Z")
    token_a = capsys.readouterr().out.split()[0]

    assert agency(path, "revoke", "a") == 0
    capsys.readouterr()
    assert agency(path, "list") == 0

    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split() == ["NAME", "STATUS", "SCOPES", "EXPIRES", "RATE", "LIMIT"]
    assert listing[1].split()[:3] == ["a", "revoked", "alerts:read"]
    assert listing[2].split()[:4] == ["b", "expired", "environment:read", "2020-01-01T00:00Z"]
    assert load_credentials(path).authenticate(token_a) is None


def test_mistakes_are_one_line_and_a_nonzero_exit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "credentials.yaml"

    assert agency(path, "revoke", "nobody") == 1
    assert agency(path, "add", "x", "--scopes", "everything") == 1
    assert agency(path, "add", "x", "--scopes", "alerts:read", "--expires", "soon") == 1

    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"madina agency: no principal 'nobody' in {path}",
        "madina agency: scopes are <area>:<verb>, e.g. alerts:read (got ['everything'])",
        "madina agency: --expires: 'soon' is neither an ISO 8601 time nor 90d/12h/30m",
    ]


def test_expiry_is_a_time_or_a_duration_from_now() -> None:
    now = datetime(2026, 11, 1, tzinfo=UTC)

    assert parse_expiry("90d", now) == now + timedelta(days=90)
    assert parse_expiry("12h", now) == now + timedelta(hours=12)
    assert parse_expiry("2027-01-01T00:00:00+01:00", now) == datetime(2026, 12, 31, 23, tzinfo=UTC)
    assert parse_expiry("2027-01-01", now) == datetime(2027, 1, 1, tzinfo=UTC)
