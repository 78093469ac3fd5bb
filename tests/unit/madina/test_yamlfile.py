"""parse_yaml reads every YAML file shipped in the repository as yaml.safe_load does."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from madina.yamlfile import parse_yaml

REPO = Path(__file__).resolve().parents[3]
SHIPPED = sorted(p for folder in ("madina", "services", "deploy") for p in (REPO / folder).rglob("*.y*ml"))


def test_the_repository_ships_yaml_files() -> None:
    assert len(SHIPPED) >= 8


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO)))
def test_parse_yaml_reads_each_shipped_file_as_safe_load_does(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert parse_yaml(text) == yaml.safe_load(text)


def test_parse_yaml_refuses_python_tags_like_safe_load() -> None:
    with pytest.raises(yaml.YAMLError):
        parse_yaml("!!python/object/apply:os.system ['true']")
