"""tests/support/compose.py reads compose files as Compose does: env-file quoting, interpolation,
and each Madina container's argv and environment with hosts and secrets rewritten for a local run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.compose import interpolate, madina_containers, parse_env_file


def test_env_file_quoting_and_comments_follow_compose() -> None:
    text = "# c\nA=1 # inline\nB='[\"x\"]'\nC=\"a $A\"\nD=${A:-9}\nA=2\n"
    assert parse_env_file(text) == {"A": "2", "B": '["x"]', "C": "a 1", "D": "1"}


def test_interpolation_defaults_errors_and_escapes() -> None:
    assert interpolate("${X:-d} ${Y} $$Y $Y", {"Y": "y"}) == "d y $Y y"
    with pytest.raises(KeyError, match="set it"):
        interpolate("${X:?set it}", {})


def test_containers_get_their_argv_and_a_rewritten_environment(tmp_path: Path) -> None:
    runs = madina_containers(
        addresses={"kafka": "127.0.0.1:39092", "postgres": "127.0.0.1:35432"},
        secrets={"credentials.yaml": tmp_path / "credentials.yaml"},
    )
    api = runs["environment-api"]
    assert api.argv == ["madina", "service", "environment-api"]
    assert api.env["MADINA_KAFKA_BOOTSTRAP"] == "127.0.0.1:39092"
    assert api.env["MADINA_CREDENTIALS_FILE"] == str(tmp_path / "credentials.yaml")
    assert "127.0.0.1:35432/" in runs["operations"].env["MADINA_DATABASE_URL"]
    assert {"kafka", "postgres"}.isdisjoint(runs)  # only containers of the Madina image
