"""``madina agency add | revoke | list``: manage the credentials file the servers read.

    madina agency add casa-transport --scopes alerts:read alerts:ack --expires 90d --rate 5 --burst 20
    madina agency revoke casa-transport
    madina agency list

The file is ``--file``, else ``MADINA_CREDENTIALS_FILE``, else the one ``madina up`` generates
(``data/secrets/credentials.yaml``). Only the token's SHA-256 is stored; ``add`` prints the token
once, on stdout, and nowhere else keeps it. Running servers pick changes up within about a second
(they re-read the file when it changes; SIGHUP makes them do it at once), so revoking needs no
restart. Edits are locked against each other and replace the file atomically.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from madina.auth import add_principal, load_credentials, revoke_principal
from madina.ratelimit import Rate
from madina.settings import MadinaSettings, load_settings

SCOPE = re.compile(r"^[a-z0-9-]+:[a-z0-9-]+$")
DURATION = re.compile(r"^(\d+)([dhm])$")
UNITS = {"d": "days", "h": "hours", "m": "minutes"}


class CredentialsFileSettings(MadinaSettings):
    """Where the credentials file is, for commands that are not servers (for which it is required)."""

    credentials_file: Path | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--file", type=Path, help="credentials file (default: MADINA_CREDENTIALS_FILE)")
    actions = parser.add_subparsers(dest="agency_action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add a principal with a new token (printed once)")
    add.add_argument("name")
    add.add_argument("--scopes", nargs="+", required=True, help="e.g. alerts:read alerts:ack (or comma-separated)")
    add.add_argument("--expires", help="ISO 8601 time (2027-01-01T00:00Z) or a duration from now (90d, 12h, 30m)")
    add.add_argument("--rate", type=float, help="calls per second (default: MADINA_RATE_LIMIT_PER_S)")
    add.add_argument("--burst", type=int, help="calls at once (default: MADINA_RATE_LIMIT_BURST, or 2 x rate)")
    add.add_argument("--replace", action="store_true", help="give an existing principal a new token")
    revoke = actions.add_parser("revoke", help="revoke a principal's token (kept in the file, marked revoked)")
    revoke.add_argument("name")
    actions.add_parser("list", help="principals, their scopes, expiry, rate limit and status")


def credentials_path(args: argparse.Namespace) -> Path:
    if args.file:
        return Path(args.file)
    settings = load_settings(CredentialsFileSettings)
    return settings.credentials_file or settings.data_dir / "secrets" / "credentials.yaml"


def parse_expiry(text: str, now: datetime) -> datetime:
    duration = DURATION.match(text)
    if duration:
        return now + timedelta(**{UNITS[duration.group(2)]: int(duration.group(1))})
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def run(args: argparse.Namespace) -> int:
    path = credentials_path(args)
    try:
        if args.agency_action == "add":
            return _add(path, args)
        if args.agency_action == "revoke":
            revoke_principal(path, args.name)
            print(f"revoked {args.name} in {path}; servers stop accepting its token within about a second")
            return 0
        return _list(path)
    except ValueError as error:
        print(f"madina agency: {error}", file=sys.stderr)
        return 1


def _add(path: Path, args: argparse.Namespace) -> int:
    scopes = sorted({scope for each in args.scopes for scope in each.split(",") if scope})
    bad = [scope for scope in scopes if not SCOPE.match(scope)]
    if bad or not scopes:
        raise ValueError(f"scopes are <area>:<verb>, e.g. alerts:read (got {bad or args.scopes})")
    try:
        expires_at = parse_expiry(args.expires, datetime.now(UTC)) if args.expires else None
    except ValueError:
        raise ValueError(f"--expires: {args.expires!r} is neither an ISO 8601 time nor 90d/12h/30m") from None
    rate = None
    if args.rate is not None or args.burst is not None:
        if args.rate is None:
            raise ValueError("--burst needs --rate")
        rate = Rate(args.rate, args.burst if args.burst is not None else max(1, round(2 * args.rate)))
    token = add_principal(path, args.name, scopes, expires_at=expires_at, rate_limit=rate, replace=args.replace)
    print(token)
    print(
        f"added {args.name} to {path} with {', '.join(scopes)}"
        f"{f', expiring {expires_at:%Y-%m-%d %H:%M} UTC' if expires_at else ''}. "
        "The token above is shown only this once.",
        file=sys.stderr,
    )
    return 0


def _list(path: Path) -> int:
    now = datetime.now(UTC)
    rows = [("NAME", "STATUS", "SCOPES", "EXPIRES", "RATE LIMIT")]
    for principal in sorted(load_credentials(path).principals.values(), key=lambda p: p.principal_id):
        status = (
            "revoked" if principal.revoked else "active" if principal.valid_at(now) else "expired"
        )
        expires = f"{principal.expires_at.astimezone(UTC):%Y-%m-%dT%H:%MZ}" if principal.expires_at else "never"
        limit = principal.rate_limit
        rows.append((
            principal.principal_id,
            status,
            ",".join(sorted(principal.scopes)) or "-",
            expires,
            f"{limit.per_s:g}/s burst {limit.burst}" if limit else "default",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0
