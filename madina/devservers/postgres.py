"""PostgreSQL for tests and benchmarks: the configured server when it answers, else a private one.

    with server_url(os.environ.get("MADINA_TEST_POSTGRES_URL")) as url:
        ...  # url names a database that accepts connections

A private server is Debian's ``postgresql`` package run by hand: ``initdb`` into a fresh temporary
data directory, ``pg_ctl start`` on a free loopback port with its Unix socket inside that
directory, database ``test``, trust authentication; stopped and deleted when the block ends. It
never touches a system cluster, so it can run beside one, and beside another run of itself.
``make system-deps`` installs the package; without it :class:`PostgresUnavailable` says so.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy import make_url

SERVER_USER = "postgres"
PRIVATE_DATABASE = "test"
_START_ATTEMPTS = 3

# A test server's data is thrown away afterwards, so durability only costs time.
_THROWAWAY_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL answers and no private one could be started; the message says why."""


def answers(url: str, timeout_s: int = 2) -> bool:
    """Whether ``url`` (SQLAlchemy form, ``postgresql+psycopg://...``) accepts a connection."""
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(conninfo, connect_timeout=timeout_s):
            return True
    except psycopg.Error:
        return False


@contextmanager
def server_url(configured: str | None) -> Iterator[str]:
    """``configured`` if it answers, else the URL of a private server that lives for the block."""
    if configured and answers(configured):
        yield configured
        return
    with private_server() as url:
        yield url


@contextmanager
def private_server(database: str = PRIVATE_DATABASE) -> Iterator[str]:
    """A PostgreSQL server of our own on a free loopback port, stopped and deleted afterwards."""
    bin_dir = find_bin_dir()
    run_as = _server_user_prefix()
    data_dir = Path(tempfile.mkdtemp(prefix="madina-postgres-"))
    initialised = False
    try:
        if run_as:
            shutil.chown(data_dir, SERVER_USER, SERVER_USER)
        _initdb(bin_dir, run_as, data_dir)
        initialised = True
        port = _start(bin_dir, run_as, data_dir)
        admin = f"postgresql://{SERVER_USER}@127.0.0.1:{port}/postgres"
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        yield f"postgresql+psycopg://{SERVER_USER}@127.0.0.1:{port}/{database}"
    finally:
        # Also after a failed start: pg_ctl may give up waiting on a server that comes up later.
        if initialised:
            _stop(bin_dir, run_as, data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


def find_bin_dir() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``, which Debian keeps off ``PATH``."""
    candidates: list[str] = []
    if pg_config := shutil.which("pg_config"):
        # pg_config comes from libpq-dev too, which names a bin dir that may not hold the server.
        result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(result.stdout.strip())
    # Newest major version first, so an upgrade left beside an old one is what runs.
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major_version, reverse=True)
    if initdb := shutil.which("initdb"):
        candidates.append(str(Path(initdb).parent))
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").is_file() and (Path(candidate) / "pg_ctl").is_file():
            return Path(candidate)
    raise PostgresUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl) found; `make system-deps` installs Debian's postgresql"
    )


def _major_version(bin_dir: str) -> tuple[int, ...]:
    """``/usr/lib/postgresql/15/bin`` -> (15,); older releases are named like ``9.6``."""
    return tuple(int(part) for part in Path(bin_dir).parent.name.split(".") if part.isdigit())


def _server_user_prefix() -> list[str]:
    """How to run the server's commands: PostgreSQL refuses to run as root, so root hands them over."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise PostgresUnavailable(
            f"running as root and there is no `{SERVER_USER}` user to run PostgreSQL as"
        ) from None
    return ["runuser", "-u", SERVER_USER, "--"]


def _initdb(bin_dir: Path, run_as: list[str], data_dir: Path) -> None:
    argv = [
        *run_as,
        str(bin_dir / "initdb"),
        "--pgdata",
        str(data_dir),
        "--username",
        SERVER_USER,
        "--auth",
        "trust",
        "--encoding",
        "UTF8",
        "--no-locale",
        "--no-sync",
        "--no-instructions",
    ]
    # cwd: the server user may not be allowed into the caller's working directory.
    result = subprocess.run(argv, cwd=data_dir, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PostgresUnavailable(f"initdb failed: {(result.stderr or result.stdout).strip()}")


def _start(bin_dir: Path, run_as: list[str], data_dir: Path) -> int:
    """Starts the server and returns its port, retrying when another process takes the port first."""
    log = data_dir / "server.log"
    failure = ""
    for _ in range(_START_ATTEMPTS):
        port = _free_loopback_port()
        # The socket directory is the data directory, so a system cluster's /var/run/postgresql is
        # neither needed nor disturbed.
        options = [f"-p {port}", "-c listen_addresses=127.0.0.1", f"-k {data_dir}"]
        options += [f"-c {name}={value}" for name, value in _THROWAWAY_SETTINGS.items()]
        argv = [*run_as, str(bin_dir / "pg_ctl"), "start", "--wait", "--timeout", "30"]
        argv += ["--pgdata", str(data_dir), "--log", str(log), "--options", " ".join(options)]
        result = subprocess.run(argv, cwd=data_dir, capture_output=True, text=True, check=False)
        if result.returncode == 0:
            return port
        failure = _tail(log) or result.stderr.strip()
    raise PostgresUnavailable(f"pg_ctl start failed: {failure}")


def _stop(bin_dir: Path, run_as: list[str], data_dir: Path) -> None:
    for mode in ("fast", "immediate"):
        argv = [*run_as, str(bin_dir / "pg_ctl"), "stop", "--wait", "--pgdata", str(data_dir), "--mode", mode]
        if subprocess.run(argv, cwd=data_dir, capture_output=True, check=False).returncode == 0:
            return


def _free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _tail(log: Path, lines: int = 5) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
