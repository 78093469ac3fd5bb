"""deploy/madina.env documents every setting: each MADINA_* variable a settings class reads is
in it (set, or commented out at its default) under a comment saying what it is, and it sets no
MADINA_* variable that nothing reads. The variables come from the settings classes themselves,
so a field added to any of them fails here until the env file documents it."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from pydantic_settings import BaseSettings

from tests.support.compose import ENV_FILE, parse_env_file

REPO = Path(__file__).resolve().parents[3]
_CLASS_LINE = re.compile(r"^class \w+\([^)]*Settings[^)]*\):", re.MULTILINE)
_DOCUMENTED = re.compile(r"^(?:# )?(?P<name>MADINA_[A-Z0-9_]+)=", re.MULTILINE)
# Read from os.environ rather than a settings class, and a secret: compose passes it from a file.
SECRET_ENVIRONMENT_VARIABLES = {"MADINA_SIMULATOR_TOKEN"}


def settings_classes() -> list[type[BaseSettings]]:
    """Every BaseSettings subclass defined in madina/ or services/ (imports the modules defining one)."""
    for package in ("madina", "services"):
        for path in sorted((REPO / package).rglob("*.py")):
            if _CLASS_LINE.search(path.read_text(encoding="utf-8")):
                module = ".".join(path.relative_to(REPO).with_suffix("").parts)
                importlib.import_module(module)
    found: list[type[BaseSettings]] = []
    pending = list(BaseSettings.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.split(".")[0] in ("madina", "services") and cls not in found:
            found.append(cls)
    return found


def variables_read() -> dict[str, str]:
    """Environment variable -> the settings class that reads it."""
    names: dict[str, str] = {}
    for cls in settings_classes():
        prefix = cls.model_config.get("env_prefix", "")
        for field_name, info in cls.model_fields.items():
            alias = info.validation_alias or info.alias
            names.setdefault(str(alias or f"{prefix}{field_name}").upper(), cls.__name__)
    return names


def undocumented(env_text: str, wanted: set[str]) -> list[str]:
    """The variables of ``wanted`` that ``env_text`` lacks or gives without a comment above."""
    lines = env_text.splitlines()
    problems = []
    for name in sorted(wanted):
        at = [i for i, line in enumerate(lines) if re.match(rf"^(# )?{name}=", line)]
        if not at:
            problems.append(f"{name}: missing")
        elif not any(i > 0 and lines[i - 1].startswith("# ") and "=" not in lines[i - 1].split()[1] for i in at):
            problems.append(f"{name}: no comment line above it")
    return problems


def test_settings_classes_are_found_programmatically() -> None:
    names = {cls.__name__ for cls in settings_classes()}
    assert {"MadinaSettings", "ServiceSettings", "EnvironmentSettings", "OperationsSettings"} <= names
    assert "MADINA_KAFKA_BOOTSTRAP" in variables_read()


def test_every_variable_a_service_reads_is_documented_in_the_env_file() -> None:
    problems = undocumented(ENV_FILE.read_text(encoding="utf-8"), set(variables_read()))
    assert not problems, "deploy/madina.env: " + "; ".join(problems)


def test_a_missing_or_bare_variable_fails_the_check() -> None:
    text = "# Kafka bootstrap.\nMADINA_KAFKA_BOOTSTRAP=kafka:9092\nMADINA_LOG_LEVEL=INFO\n"
    assert undocumented(text, {"MADINA_KAFKA_BOOTSTRAP"}) == []
    assert undocumented(text, {"MADINA_LOG_LEVEL"}) == ["MADINA_LOG_LEVEL: no comment line above it"]
    assert undocumented(text, {"MADINA_DATA_DIR"}) == ["MADINA_DATA_DIR: missing"]


def test_the_env_file_sets_no_variable_that_nothing_reads() -> None:
    known = set(variables_read()) | SECRET_ENVIRONMENT_VARIABLES
    documented = set(_DOCUMENTED.findall(ENV_FILE.read_text(encoding="utf-8")))
    assert not documented - known, f"deploy/madina.env names unknown variables {sorted(documented - known)}"


def test_the_env_file_holds_no_secret_value() -> None:
    values = parse_env_file(ENV_FILE.read_text(encoding="utf-8"))
    assert not SECRET_ENVIRONMENT_VARIABLES & set(values)
    for name, value in values.items():
        assert not re.search(r"PASSWORD|TOKEN|SECRET", name) or name.endswith("_FILE"), name
        if name.endswith("_FILE"):
            assert value.startswith("/run/secrets/") or not value, f"{name} should name a mounted secret"
    assert "@" not in values["MADINA_DATABASE_URL"].split("//", 1)[1].split("@")[0].replace("madina", "")
