"""The private PostgreSQL of madina.devservers.postgres: used only when needed, and gone afterwards."""

from __future__ import annotations

import socket
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import make_url

from madina.devservers import postgres
from madina.devservers.postgres import PostgresUnavailable, answers, private_server, server_url


@pytest.fixture
def server_binaries() -> None:
    try:
        postgres.find_bin_dir()
    except PostgresUnavailable as reason:
        pytest.skip(str(reason))


def _unused_loopback_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/test"


def _data_directory(url: str) -> Path:
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo) as connection:
        row = connection.execute("SHOW data_directory").fetchone()
    assert row is not None
    return Path(row[0])


@pytest.mark.usefixtures("server_binaries")
def test_private_server_serves_database_test_and_is_stopped_and_deleted_afterwards() -> None:
    with private_server() as url:
        assert make_url(url).database == "test"
        assert answers(url)
        data_directory = _data_directory(url)
    assert not answers(url)
    assert not data_directory.exists()


@pytest.mark.usefixtures("server_binaries")
def test_unreachable_configured_url_is_replaced_and_an_answering_one_is_kept() -> None:
    unreachable = _unused_loopback_url()
    with server_url(unreachable) as private:
        assert private != unreachable
        assert answers(private)
        with server_url(private) as chosen:
            assert chosen == private


def test_missing_server_binaries_name_the_package_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres.shutil, "which", lambda name: None)
    monkeypatch.setattr(postgres.glob, "glob", lambda pattern: [])
    with pytest.raises(PostgresUnavailable, match="make system-deps"):
        postgres.find_bin_dir()
