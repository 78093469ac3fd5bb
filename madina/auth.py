"""Bearer tokens with scopes: one credentials model for HTTP devices, operators and gRPC partner agencies.

Tokens never live in the repository. A credentials file (YAML or JSON, named by a setting such as
``MADINA_CREDENTIALS_FILE``) maps principal ids to the SHA-256 of their token and their scopes::

    principals:
      casa-transport:  {token_sha256: "9f86d0...", scopes: ["alerts:read", "alerts:ack"]}
      sensor-gateway:  {token_sha256: "60303a...", scopes: ["environment:publish"]}

Only hashes are stored, so the file itself is not a secret worth stealing. ``madina up`` writes a
fresh one with random tokens under ``data/secrets/`` for local runs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Principal:
    principal_id: str
    token_sha256: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


class Credentials:
    """Finds the principal presenting a token; comparisons are constant-time per entry."""

    def __init__(self, principals: Mapping[str, Principal]) -> None:
        self._principals = dict(principals)

    def authenticate(self, token: str) -> Principal | None:
        if not token:
            return None
        digest = hash_token(token)
        found = None
        for principal in self._principals.values():
            if hmac.compare_digest(principal.token_sha256, digest):
                found = principal
        return found

    def __len__(self) -> int:
        return len(self._principals)


def parse_credentials(document: Mapping[str, Any], origin: str = "credentials") -> Credentials:
    principals = {}
    entries = document.get("principals")
    if not isinstance(entries, Mapping):
        raise ValueError(f"{origin}: expected a 'principals' mapping")
    for principal_id, entry in entries.items():
        try:
            digest = entry.get("token_sha256") or hash_token(entry["token"])
            scopes = frozenset(entry.get("scopes") or ())
        except (AttributeError, KeyError, TypeError):
            raise ValueError(
                f"{origin}: principal {principal_id!r} needs token_sha256 (or token) and scopes"
            ) from None
        principals[str(principal_id)] = Principal(str(principal_id), str(digest), scopes)
    return Credentials(principals)


def load_credentials(path: Path) -> Credentials:
    try:
        text = path.read_text()
    except OSError as error:
        raise ValueError(f"cannot read credentials file {path}: {error.strerror}") from None
    document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    return parse_credentials(document or {}, str(path))


def write_credentials(path: Path, scopes_by_principal: Mapping[str, list[str]]) -> dict[str, str]:
    """Create a credentials file with a fresh random token per principal; return the clear tokens."""
    tokens = {principal: new_token() for principal in scopes_by_principal}
    document = {
        "principals": {
            principal: {"token_sha256": hash_token(tokens[principal]), "scopes": list(scopes)}
            for principal, scopes in scopes_by_principal.items()
        }
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=True))
    path.chmod(0o600)
    return tokens
