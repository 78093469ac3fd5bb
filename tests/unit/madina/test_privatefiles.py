"""Secrets are private from their first byte: files 0600 in 0700 directories, whatever the umask.

Each test sets a permissive umask (000), as a careless shell or container might, and watches the
directory at every file operation the process makes (a ``sys.addaudithook`` hook fires before each
open, chmod, rename...), so a file that existed for a moment with a wider mode is caught even if it
was narrowed afterwards.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from madina.auth import add_principal, write_credentials
from madina.grpc.tls import ensure_self_signed
from madina.localsecrets import ensure_local_secrets
from madina.privatefiles import restrict_umask, write_private
from madina.settings import MadinaSettings


class ModeWatch:
    """The widest mode seen for each file under ``root`` at any audited operation."""

    watching: ModeWatch | None = None

    def __init__(self, root: Path) -> None:
        self.root = root
        self.widest: dict[str, int] = {}

    def look(self) -> None:
        for directory, _, files in os.walk(self.root):
            for name in files:
                try:
                    mode = stat.S_IMODE(os.lstat(os.path.join(directory, name)).st_mode)
                except FileNotFoundError:
                    continue
                key = os.path.relpath(os.path.join(directory, name), self.root)
                self.widest[key] = self.widest.get(key, 0) | mode


def _audit(event: str, args: tuple) -> None:
    watch = ModeWatch.watching
    if watch is not None and event in ("open", "os.chmod", "os.rename", "os.remove", "os.mkdir"):
        ModeWatch.watching = None  # os.walk opens directories too; do not recurse
        try:
            watch.look()
        finally:
            ModeWatch.watching = watch


sys.addaudithook(_audit)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def watch(tmp_path: Path, permissive_umask: None) -> Iterator[ModeWatch]:
    ModeWatch.watching = watcher = ModeWatch(tmp_path)
    try:
        yield watcher
    finally:
        ModeWatch.watching = None
        watcher.look()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_never_wider_than_0600(watch: ModeWatch) -> None:
    watch.look()
    assert watch.widest, "nothing was written"
    wider = {name: oct(seen) for name, seen in watch.widest.items() if seen & 0o077}
    assert not wider, f"files readable by others at some moment: {wider}"


def test_local_secrets_are_0600_in_a_0700_directory_from_the_first_byte(tmp_path: Path, watch: ModeWatch) -> None:
    settings = MadinaSettings(_env_file=None, data_dir=tmp_path / "data")  # type: ignore[call-arg]

    secrets = ensure_local_secrets(settings)

    assert mode(tmp_path / "data" / "secrets") == 0o700
    for path in (secrets.credentials_file, secrets.tls_key_file, secrets.tls_cert_file,
                 secrets.credentials_file.with_name("tokens.yaml")):
        assert mode(path) == 0o600, path
    assert_never_wider_than_0600(watch)


def test_a_credentials_file_and_a_tls_key_are_private_from_the_first_byte(tmp_path: Path, watch: ModeWatch) -> None:
    write_credentials(tmp_path / "creds" / "credentials.yaml", {"partner": ["alerts:read"]})
    ensure_self_signed(tmp_path / "tls")

    assert mode(tmp_path / "creds") == 0o700
    assert mode(tmp_path / "tls" / "grpc-key.pem") == 0o600
    assert_never_wider_than_0600(watch)


def test_madina_agency_edits_keep_the_file_private(tmp_path: Path, watch: ModeWatch) -> None:
    path = tmp_path / "credentials.yaml"
    add_principal(path, "a", ["alerts:read"])
    add_principal(path, "b", ["alerts:read"])

    assert mode(path) == 0o600
    assert_never_wider_than_0600(watch)


def test_a_narrower_umask_does_not_leave_the_owner_unable_to_write(tmp_path: Path) -> None:
    previous = os.umask(0o277)
    try:
        write_private(tmp_path / "secret", b"x")
    finally:
        os.umask(previous)

    assert mode(tmp_path / "secret") == 0o600


def test_restricting_the_umask_makes_later_files_owner_only(tmp_path: Path, permissive_umask: None) -> None:
    # What `madina service` and `madina up` do before the store, broker segments or logs exist.
    import sqlite3

    restrict_umask()
    sqlite3.connect(tmp_path / "madina.db").execute("create table t (x)").connection.close()

    assert mode(tmp_path / "madina.db") & 0o077 == 0


def test_supervisor_child_logs_are_private(tmp_path: Path, permissive_umask: None) -> None:
    from madina.supervisor import Child

    child = Child("echo", [sys.executable, "-c", "print('hello')"], dict(os.environ), tmp_path / "logs" / "echo.log")
    child.start()
    assert child.process is not None
    child.process.wait(10)

    assert mode(tmp_path / "logs" / "echo.log") == 0o600
    assert "hello" in (tmp_path / "logs" / "echo.log").read_text()
