"""Bearer tokens with scopes: one credentials model for HTTP devices, operators and gRPC partner agencies.

Tokens never live in the repository. A credentials file (YAML or JSON, named by a setting such as
``MADINA_CREDENTIALS_FILE``) maps principal ids to the SHA-256 of their token and their scopes,
and optionally an expiry, a rate limit of their own, or a revocation::

    principals:
      casa-transport:  {token_sha256: "9f86d0...", scopes: ["alerts:read", "alerts:ack"],
                        expires_at: "2027-01-01T00:00:00Z", rate_limit: {per_s: 5, burst: 20}}
      sensor-gateway:  {token_sha256: "60303a...", scopes: ["environment:publish"]}
      old-partner:     {token_sha256: "2c26b4...", scopes: ["alerts:read"], revoked: true}

Only hashes are stored, so the file itself is not a secret worth stealing. ``madina up`` writes a
fresh one with random tokens under ``data/secrets/`` for local runs; ``madina agency add / revoke /
list`` manage it.

A server re-reads its file when it changes (checked at most once a second, on the next call) and
on SIGHUP, so revocation and new partners need no restart; a file that fails to parse is logged and
the previous principals stay in force. :meth:`Credentials.admit` is what both transports call: it
holds each principal to its rate (a token bucket, ``madina.ratelimit``) and each client address to
a rate of failed authentications, so guessing tokens is slow.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import math
import os
import secrets
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from madina.privatefiles import open_private_append, write_private
from madina.ratelimit import KeyedBuckets, Rate
from madina.yamlfile import parse_yaml

if TYPE_CHECKING:
    from madina.settings import ServiceSettings

log = logging.getLogger(__name__)

# How often a server looks at its credentials file's modification time (on a call, never idle).
RELOAD_CHECK_INTERVAL_S = 1.0


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Principal:
    principal_id: str
    token_sha256: str
    scopes: frozenset[str]
    rate_limit: Rate | None = None
    expires_at: datetime | None = None
    revoked: bool = False

    def allows(self, scope: str) -> bool:
        return scope in self.scopes

    def valid_at(self, now: datetime) -> bool:
        return not self.revoked and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True)
class AccessLimits:
    """The rate of a principal without a ``rate_limit`` of its own, and of failed authentications
    per client address (a guesser gets ``burst`` tries, then one per 1/``per_s`` seconds)."""

    per_principal: Rate = field(default_factory=lambda: Rate(per_s=50.0, burst=200))
    failed_auth_per_address: Rate = field(default_factory=lambda: Rate(per_s=0.2, burst=20))


class AccessDenied(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotAuthenticated(AccessDenied):
    """No principal holds the token presented (or it expired, or was revoked)."""


class Throttled(AccessDenied):
    """Over a rate limit; ``retry_after_s`` is when the next call would be admitted."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    @property
    def retry_after_header(self) -> str:
        """Whole seconds, rounded up so a client that waits this long is admitted."""
        return str(max(1, math.ceil(self.retry_after_s)))


_FILE_BACKED: weakref.WeakSet[Credentials] = weakref.WeakSet()


def reload_credentials_files() -> None:
    """Re-read every credentials file this process serves from (the SIGHUP handler calls this)."""
    for credentials in list(_FILE_BACKED):
        credentials.reload()


class Credentials:
    """Finds the principal presenting a token and admits its calls; comparisons are constant-time
    per entry. Used from one event loop (both servers of a process share it, and so share each
    principal's rate)."""

    def __init__(
        self,
        principals: Mapping[str, Principal],
        *,
        source: Path | None = None,
        limits: AccessLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        reload_check_interval_s: float = RELOAD_CHECK_INTERVAL_S,
    ) -> None:
        self._principals = dict(principals)
        self.limits = limits or AccessLimits()
        self._clock = clock
        self._now = now
        self._calls = KeyedBuckets(clock)
        self._failures = KeyedBuckets(clock)
        self._source = source
        self._reload_check_interval_s = reload_check_interval_s
        self._next_check = clock() + reload_check_interval_s
        self._signature = file_signature(source) if source is not None else None
        if source is not None:
            _FILE_BACKED.add(self)

    @property
    def principals(self) -> Mapping[str, Principal]:
        return self._principals

    def authenticate(self, token: str | None) -> Principal | None:
        """The principal holding ``token``, if it is neither expired nor revoked."""
        self._reload_if_changed()
        if not token:
            return None
        digest = hash_token(token)
        found = None
        for principal in self._principals.values():
            if hmac.compare_digest(principal.token_sha256, digest):
                found = principal
        return found if found is not None and found.valid_at(self._now()) else None

    def admit(self, token: str | None, client: str) -> Principal:
        """The principal for this call, or raise :class:`NotAuthenticated` / :class:`Throttled`.

        ``client`` is the caller's address. Its failures are counted only for a token presented
        and refused (a missing token guesses nothing), and once they run out it is refused before
        its token is even looked at.
        """
        guessing = self.limits.failed_auth_per_address
        waiting = self._failures.wait(client, guessing)
        if waiting:
            raise Throttled(f"too many failed authentication attempts from {client}", waiting)
        principal = self.authenticate(token)
        if principal is None:
            if token:
                self._failures.take(client, guessing)
            raise NotAuthenticated("missing or invalid bearer token")
        rate = principal.rate_limit or self.limits.per_principal
        waiting = self._calls.take(principal.principal_id, rate)
        if waiting:
            raise Throttled(
                f"{principal.principal_id} is over its rate limit of {rate.per_s:g} calls/s "
                f"(burst {rate.burst})",
                waiting,
            )
        return principal

    def reload(self) -> bool:
        """Re-read the source file; on a bad file keep the principals in force and say why."""
        if self._source is None:
            return False
        signature = file_signature(self._source)
        try:
            principals = _read_principals(self._source)
        except ValueError as error:
            log.error("credentials file not reloaded; the previous principals stay in force: %s", error)
            return False
        self._principals, self._signature = principals, signature
        log.info("credentials reloaded", extra={"file": str(self._source), "principals": len(principals)})
        return True

    def _reload_if_changed(self) -> None:
        if self._source is None:
            return
        now = self._clock()
        if now < self._next_check:
            return
        self._next_check = now + self._reload_check_interval_s
        if file_signature(self._source) != self._signature:
            self.reload()

    def __len__(self) -> int:
        return len(self._principals)


def file_signature(path: Path) -> tuple[int, int, int] | None:
    """What changes when ``path`` does (files re-read while serving: credentials, CRLs)."""
    # The inode changes on an atomic replace, mtime_ns and size on an edit in place.
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def _parse_time(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_principals(document: Mapping[str, Any], origin: str = "credentials") -> dict[str, Principal]:
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
        try:
            limit = entry.get("rate_limit")
            rate = Rate(float(limit["per_s"]), int(limit["burst"])) if limit else None
            expires = entry.get("expires_at")
            expires_at = _parse_time(expires) if expires else None
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"{origin}: principal {principal_id!r}: rate_limit needs per_s > 0 and burst >= 1, "
                f"expires_at an ISO 8601 time ({error})"
            ) from None
        principals[str(principal_id)] = Principal(
            str(principal_id), str(digest), scopes, rate, expires_at, bool(entry.get("revoked"))
        )
    return principals


def parse_credentials(document: Mapping[str, Any], origin: str = "credentials") -> Credentials:
    return Credentials(parse_principals(document, origin))


def _read_document(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as error:
        raise ValueError(f"cannot read credentials file {path}: {error.strerror}") from None
    try:
        document = json.loads(text) if path.suffix == ".json" else parse_yaml(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {error}") from None
    if document is not None and not isinstance(document, dict):
        raise ValueError(f"{path}: expected a 'principals' mapping")
    return document or {}


def _read_principals(path: Path) -> dict[str, Principal]:
    return parse_principals(_read_document(path), str(path))


def load_credentials(path: Path, limits: AccessLimits | None = None) -> Credentials:
    """The principals of ``path``; the result re-reads the file when it changes."""
    return Credentials(_read_principals(path), source=path, limits=limits)


def load_service_credentials(settings: ServiceSettings) -> Credentials:
    """A server's credentials, with the default rate limits its settings give."""
    return load_credentials(
        settings.credentials_file,
        AccessLimits(
            per_principal=Rate(settings.rate_limit_per_s, settings.rate_limit_burst),
            failed_auth_per_address=Rate(settings.auth_failures_per_s, settings.auth_failures_burst),
        ),
    )


def _dump(path: Path, document: Mapping[str, Any]) -> str:
    if path.suffix == ".json":
        return json.dumps(document, indent=2, sort_keys=True) + "\n"
    return yaml.safe_dump(dict(document), sort_keys=True)


def write_credentials(path: Path, scopes_by_principal: Mapping[str, list[str]]) -> dict[str, str]:
    """Create a credentials file with a fresh random token per principal; return the clear tokens."""
    tokens = {principal: new_token() for principal in scopes_by_principal}
    document = {
        "principals": {
            principal: {"token_sha256": hash_token(tokens[principal]), "scopes": list(scopes)}
            for principal, scopes in scopes_by_principal.items()
        }
    }
    write_private(path, _dump(path, document))
    return tokens


# --- managing the file (`madina agency`) ---------------------------------------------------------


@contextlib.contextmanager
def _editing(path: Path) -> Iterator[dict[str, Any]]:
    """Read-modify-write of the credentials file, one editor at a time, replaced atomically."""
    descriptor = open_private_append(path.with_name(f".{path.name}.lock"))
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        document = _read_document(path) if path.exists() else {}
        principals = document.setdefault("principals", {})
        if not isinstance(principals, dict):
            raise ValueError(f"{path}: expected a 'principals' mapping")
        yield document
        parse_principals(document, str(path))  # never write a file the servers would refuse
        write_private(path, _dump(path, document))
    finally:
        os.close(descriptor)


def add_principal(
    path: Path,
    principal_id: str,
    scopes: list[str],
    *,
    expires_at: datetime | None = None,
    rate_limit: Rate | None = None,
    replace: bool = False,
) -> str:
    """Add ``principal_id`` with a new random token to the file (created if missing); return the token.

    An existing principal is refused unless ``replace``, which gives it a new token (the old one
    stops working once servers re-read the file).
    """
    token = new_token()
    with _editing(path) as document:
        if principal_id in document["principals"] and not replace:
            raise ValueError(f"{principal_id!r} already exists in {path} (revoke it, or add with --replace)")
        entry: dict[str, Any] = {"token_sha256": hash_token(token), "scopes": sorted(set(scopes))}
        if expires_at is not None:
            entry["expires_at"] = expires_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        if rate_limit is not None:
            entry["rate_limit"] = {"per_s": rate_limit.per_s, "burst": rate_limit.burst}
        document["principals"][principal_id] = entry
    return token


def grant_scopes(path: Path, scopes_by_principal: Mapping[str, Sequence[str]]) -> None:
    """Set the scopes of principals already in the file (tokens unchanged); others are left alone."""
    with _editing(path) as document:
        for principal_id, scopes in scopes_by_principal.items():
            entry = document["principals"].get(principal_id)
            if entry is not None:
                entry["scopes"] = sorted(set(scopes))


def revoke_principal(path: Path, principal_id: str, now: datetime | None = None) -> None:
    """Mark ``principal_id`` revoked (kept in the file, so ``list`` still shows who it was)."""
    with _editing(path) as document:
        entry = document["principals"].get(principal_id)
        if not isinstance(entry, dict):
            raise ValueError(f"no principal {principal_id!r} in {path}")
        entry["revoked"] = True
        entry["revoked_at"] = (now or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
