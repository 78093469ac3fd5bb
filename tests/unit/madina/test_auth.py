"""Credentials: expiry, revocation, re-reading the file, and admission with rate limits."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from madina.auth import (
    AccessLimits,
    Credentials,
    NotAuthenticated,
    Throttled,
    add_principal,
    hash_token,
    load_credentials,
    parse_principals,
    reload_credentials_files,
    revoke_principal,
    write_credentials,
)
from madina.ratelimit import Rate

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def credentials(document: dict, **options) -> Credentials:
    return Credentials(parse_principals(document), now=lambda: NOW, **options)


def test_a_token_past_its_expiry_no_longer_authenticates() -> None:
    store = credentials({"principals": {
        "current": {"token": "a", "scopes": [], "expires_at": "2026-11-01T12:00:01Z"},
        "expired": {"token": "b", "scopes": [], "expires_at": NOW},
    }})

    assert store.authenticate("a") is not None
    assert store.authenticate("b") is None


def test_a_revoked_token_no_longer_authenticates() -> None:
    store = credentials({"principals": {"old": {"token": "a", "scopes": [], "revoked": True}}})

    assert store.authenticate("a") is None


def test_a_principal_over_its_own_rate_is_throttled_with_the_wait() -> None:
    clock = FakeClock()
    store = credentials(
        {"principals": {"slow": {"token": "s", "scopes": [], "rate_limit": {"per_s": 0.5, "burst": 2}},
                        "usual": {"token": "u", "scopes": []}}},
        clock=clock, limits=AccessLimits(per_principal=Rate(100, 100)),
    )
    store.admit("s", "10.0.0.1")
    store.admit("s", "10.0.0.2")

    with pytest.raises(Throttled) as throttled:
        store.admit("s", "10.0.0.1")

    assert throttled.value.retry_after_s == pytest.approx(2.0)
    assert throttled.value.retry_after_header == "2"
    assert store.admit("u", "10.0.0.1").principal_id == "usual"  # the default rate, not the slow one's
    clock.now += 2.0
    assert store.admit("s", "10.0.0.1").principal_id == "slow"


def test_an_address_that_keeps_presenting_wrong_tokens_is_throttled_even_with_a_right_one() -> None:
    clock = FakeClock()
    store = credentials(
        {"principals": {"p": {"token": "right", "scopes": []}}},
        clock=clock, limits=AccessLimits(failed_auth_per_address=Rate(per_s=0.1, burst=3)),
    )
    for _ in range(3):
        with pytest.raises(NotAuthenticated):
            store.admit("wrong", "10.0.0.9")

    with pytest.raises(Throttled) as throttled:
        store.admit("right", "10.0.0.9")

    assert throttled.value.retry_after_s == pytest.approx(10.0)
    assert store.admit("right", "10.0.0.10").principal_id == "p"  # other addresses are not held back
    clock.now += 10.0
    assert store.admit("right", "10.0.0.9").principal_id == "p"


def test_a_missing_token_is_refused_without_counting_as_a_guess() -> None:
    store = credentials({"principals": {}}, limits=AccessLimits(failed_auth_per_address=Rate(1, 1)))
    for _ in range(5):
        with pytest.raises(NotAuthenticated):
            store.admit(None, "10.0.0.9")


def test_the_file_is_reread_when_it_changes_within_the_check_interval(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "credentials.yaml"
    tokens = write_credentials(path, {"partner": ["alerts:read"]})
    store = Credentials(load_credentials(path).principals, source=path, clock=clock, reload_check_interval_s=1.0)
    assert store.authenticate(tokens["partner"]) is not None

    revoke_principal(path, "partner")
    clock.now += 0.5
    assert store.authenticate(tokens["partner"]) is not None  # not looked at yet: at most once a second
    clock.now += 0.6

    assert store.authenticate(tokens["partner"]) is None


def test_a_file_edited_in_place_is_reread(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "credentials.yaml"
    path.write_text(yaml.safe_dump({"principals": {"a": {"token_sha256": hash_token("t"), "scopes": []}}}))
    store = Credentials({}, source=path, clock=clock)
    store.reload()
    assert store.authenticate("t") is not None

    path.write_text(yaml.safe_dump({"principals": {}}))
    os.utime(path, ns=(0, 1))  # even if the clock of the file system did not move
    clock.now += 1.0

    assert store.authenticate("t") is None


def test_a_broken_file_keeps_the_principals_in_force(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "credentials.yaml"
    tokens = write_credentials(path, {"partner": ["alerts:read"]})
    store = load_credentials(path)

    path.write_text("principals: [not: {a mapping")

    assert store.reload() is False
    assert store.authenticate(tokens["partner"]) is not None
    assert "previous principals stay in force" in caplog.text


def test_sighup_handler_rereads_every_credentials_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "credentials.yaml"
    tokens = write_credentials(path, {"partner": ["alerts:read"]})
    store = Credentials(load_credentials(path).principals, source=path, reload_check_interval_s=3600)
    revoke_principal(path, "partner")
    assert store.authenticate(tokens["partner"]) is not None

    reload_credentials_files()

    assert store.authenticate(tokens["partner"]) is None


def test_added_principal_keeps_only_the_hash_with_its_limits_and_expiry(tmp_path: Path) -> None:
    path = tmp_path / "credentials.yaml"
    expires = NOW + timedelta(days=90)

    token = add_principal(path, "casa-transport", ["alerts:read"], expires_at=expires, rate_limit=Rate(5, 20))

    text = path.read_text()
    assert token not in text
    principal = load_credentials(path).principals["casa-transport"]
    assert principal.token_sha256 == hash_token(token)
    assert (principal.expires_at, principal.rate_limit, principal.scopes) == (
        expires, Rate(5, 20), frozenset({"alerts:read"})
    )


def test_adding_an_existing_principal_needs_replace(tmp_path: Path) -> None:
    path = tmp_path / "credentials.yaml"
    first = add_principal(path, "p", ["alerts:read"])

    with pytest.raises(ValueError, match="already exists"):
        add_principal(path, "p", ["alerts:read"])
    second = add_principal(path, "p", ["alerts:read"], replace=True)

    store = load_credentials(path)
    assert store.authenticate(first) is None
    assert store.authenticate(second) is not None


@pytest.mark.parametrize(
    "entry",
    [{"token": "t", "scopes": [], "rate_limit": {"per_s": 0, "burst": 1}},
     {"token": "t", "scopes": [], "rate_limit": {"per_s": 1}},
     {"token": "t", "scopes": [], "expires_at": "next tuesday"}],
)
def test_a_bad_limit_or_expiry_names_the_principal(entry: dict) -> None:
    with pytest.raises(ValueError, match="principal 'p'"):
        parse_principals({"principals": {"p": entry}})
