"""Scopes belong to domains: local principals get what the installed domains grant them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from madina.domains import PARTNER, PUBLISHERS, READERS, Domain, Scope, discover, local_principals
from madina.localsecrets import ensure_local_secrets
from madina.settings import MadinaSettings

BINS = Domain(
    name="bins", topics=[], components=[],
    scopes=[Scope("bins:publish", "Publish fill levels.", PUBLISHERS), Scope("bins:read", "Read bins.", READERS)],
)


def test_a_new_domains_scopes_reach_the_local_principals_it_names() -> None:
    granted = local_principals([*discover(), BINS])
    assert "bins:publish" in granted["simulator"] and "bins:publish" in granted[PARTNER]
    assert "bins:read" in granted["viewer"] and "bins:publish" not in granted["viewer"]
    assert "environment:read" in granted["viewer"], "the installed domains keep theirs"


def test_a_scope_a_domain_does_not_declare_fails_at_import_time() -> None:
    assert BINS.scope("bins:read") == "bins:read"
    with pytest.raises(KeyError, match="declares no scope"):
        BINS.scope("bins:write")


def test_existing_local_credentials_get_new_scopes_and_keep_their_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = MadinaSettings(data_dir=tmp_path)
    first = ensure_local_secrets(settings)
    monkeypatch.setattr("madina.localsecrets.local_principals", lambda: local_principals([*discover(), BINS]))
    second = ensure_local_secrets(settings)
    assert second.tokens == first.tokens
    principals = yaml.safe_load(second.credentials_file.read_text())["principals"]
    assert "bins:publish" in principals["simulator"]["scopes"]
