"""Secrets for a one-machine run, made on first use and kept under ``data/secrets/`` (never in git).

The directory is 0700 and every file in it is created 0600 from its first byte
(``madina.privatefiles``): a token or key is never readable by another user, not even briefly.

Deployments mount their own credentials file and certificates and point the settings at them;
``madina up`` uses this module only for whatever those settings leave unset.

Who gets which scope is not written here: every installed domain declares its scopes and the
local principals they go to (madina.domains.Scope), so a new domain's scopes reach the local
tokens, without a new token, on the next start.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml

from madina.auth import grant_scopes, write_credentials
from madina.domains import local_principals
from madina.privatefiles import private_directory, write_private
from madina.settings import MadinaSettings
from madina.yamlfile import parse_yaml


@dataclass(frozen=True)
class LocalSecrets:
    credentials_file: Path
    tokens: dict[str, str]
    tls_cert_file: Path
    tls_key_file: Path
    alert_signing_key_file: Path


def secrets_dir(settings: MadinaSettings) -> Path:
    return settings.data_dir / "secrets"


def ensure_local_secrets(settings: MadinaSettings) -> LocalSecrets:
    from madina.grpc.tls import ensure_self_signed

    directory = private_directory(secrets_dir(settings))
    credentials_file, tokens_file = directory / "credentials.yaml", directory / "tokens.yaml"
    principals = local_principals()
    if credentials_file.exists() and tokens_file.exists():
        tokens = parse_yaml(tokens_file.read_text()) or {}
        grant_scopes(credentials_file, principals)
    else:
        tokens = write_credentials(credentials_file, principals)
        write_private(tokens_file, yaml.safe_dump(tokens))
    cert, key = ensure_self_signed(directory)
    return LocalSecrets(credentials_file, tokens, cert, key, _ensure_alert_signing_key(directory))


def _ensure_alert_signing_key(directory: Path) -> Path:
    """The key every local process signs and checks ``alerts.v1`` records with (madina.bus.signing)."""
    path = directory / "alert-signing.key"
    if not path.exists():
        write_private(path, secrets.token_hex(32))
    return path


def simulator_token(settings: MadinaSettings) -> str:
    """The simulator's device token: MADINA_SIMULATOR_TOKEN, else the local secrets."""
    return os.environ.get("MADINA_SIMULATOR_TOKEN") or ensure_local_secrets(settings).tokens["simulator"]
