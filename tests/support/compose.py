"""deploy/compose.yaml read the way Docker Compose reads it, so tests can use it without Docker.

:func:`madina_containers` is what a runtime test needs to start each Madina container's command
as a local process against its own Apache Kafka and PostgreSQL: for every compose service built
from the Madina image, its ``madina`` argv and its environment (``deploy/madina.env``, then the
service's ``environment``), with the compose host names (``kafka``, ``kafka-2``, ``kafka-3``,
``postgres``) and secret paths (``/run/secrets/NAME``) rewritten to what the test gives::

    containers = madina_containers(
        addresses={"kafka": "127.0.0.1:39092", "postgres": "127.0.0.1:35432"},
        secrets={"credentials.yaml": tmp / "credentials.yaml", ...},
    )
    run = containers["environment-api"]
    subprocess.Popen([sys.executable, "-m", *run.argv], env={**os.environ, **run.env})

What it does not do: the environment keeps the image's paths (``MADINA_DATA_DIR=/var/lib/madina``)
and ports, which a test overrides in ``env``; a service whose entrypoint adds variables (the
simulator's MADINA_SIMULATOR_TOKEN, read from a secret) leaves them to the caller. Interpolation
(``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}``, ``$$``) takes its variables from the env file
only, never from the shell, so a test's result does not depend on who runs it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE_FILE = DEPLOY / "compose.yaml"
ENV_FILE = DEPLOY / "madina.env"
MADINA_IMAGE = "madina:local"
SECRETS_DIR = "/run/secrets/"

_VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?$", re.DOTALL)
_ENV_LINE = re.compile(r"^\s*(?:export\s+)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<value>.*)$")


@dataclass(frozen=True)
class ContainerRun:
    """One compose service of the Madina image, as a local process would run it."""

    service: str
    argv: list[str]  # starts with "madina"; run it as `python -m madina ...` or the console script
    env: dict[str, str]
    profiles: list[str] = field(default_factory=list)  # empty: started by a plain `compose up`
    secrets: list[str] = field(default_factory=list)


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines as Compose reads them: comments, quotes, inline ` #`; a later key wins."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _ENV_LINE.match(line)
        if not match:
            raise ValueError(f"not a KEY=VALUE line: {line!r}")
        values[match["name"]] = _env_value(match["value"].strip(), values)
    return values


def _env_value(raw: str, known: Mapping[str, str]) -> str:
    if raw[:1] == "'":
        return raw[1 : raw.index("'", 1)]  # single quotes: literal
    if raw[:1] == '"':
        end = 1
        while raw[end] != '"':
            end += 2 if raw[end] == "\\" else 1
        inner = raw[1:end].encode().decode("unicode_escape")
        return interpolate(inner, known)
    return interpolate(raw.split(" #", 1)[0].rstrip(), known)


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """Compose's ``$`` interpolation of one string; an unmet ``${VAR:?error}`` raises KeyError."""

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["named"]:
            return variables.get(match["named"], "")
        braced = _BRACED.match(match["braced"])
        if not braced:
            raise ValueError(f"bad interpolation ${{{match['braced']}}}")
        name, op, arg = braced["name"], braced["op"], braced["arg"] or ""
        value = variables.get(name)
        unset_or_empty = not value if op and op.startswith(":") else value is None
        if op in (":-", "-"):
            return interpolate(arg, variables) if unset_or_empty else value or ""
        if op in (":?", "?"):
            if unset_or_empty:
                raise KeyError(f"{name}: {arg}")
            return value or ""
        if op in (":+", "+"):
            return "" if unset_or_empty else interpolate(arg, variables)
        return value or ""

    return _VARIABLE.sub(substitute, text)


def _interpolate_tree(node: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, list):
        return [_interpolate_tree(each, variables) for each in node]
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, variables) for key, value in node.items()}
    return node


def load_compose(
    compose_file: Path = COMPOSE_FILE, env_file: Path = ENV_FILE
) -> tuple[dict[str, Any], dict[str, str]]:
    """The compose model with ``${...}`` resolved from ``env_file``, and that file's variables."""
    variables = parse_env_file(env_file.read_text(encoding="utf-8"))
    model = yaml.safe_load(compose_file.read_text(encoding="utf-8"))
    return _interpolate_tree(model, variables), variables


def _environment(node: Mapping[str, Any] | Sequence[str] | None) -> dict[str, str]:
    if node is None:
        return {}
    if isinstance(node, Mapping):
        return {key: "" if value is None else str(value) for key, value in node.items()}
    return dict(item.split("=", 1) if "=" in item else (item, "") for item in node)


def _rewrite(value: str, addresses: Mapping[str, str], secrets: Mapping[str, Path]) -> str:
    for host, address in addresses.items():
        # host:port as a whole (the test's servers have their own ports); not inside other names.
        value = re.sub(rf"(?<![\w.-]){re.escape(host)}:\d+(?![\w.-])", address, value)
    for name, path in secrets.items():
        value = value.replace(f"{SECRETS_DIR}{name}", str(path))
    return value


def madina_containers(
    addresses: Mapping[str, str] | None = None,
    secrets: Mapping[str, Path] | None = None,
    *,
    compose_file: Path = COMPOSE_FILE,
    env_file: Path = ENV_FILE,
) -> dict[str, ContainerRun]:
    """Every compose service of the Madina image: its ``madina`` argv and environment.

    ``addresses`` maps a compose host name to the ``host:port`` that replaces ``name:<port>`` in
    every value (``{"kafka": "127.0.0.1:39092", "postgres": "127.0.0.1:35432"}``); ``secrets``
    maps a compose secret name to the local file that replaces ``/run/secrets/<name>``.
    """
    model, _ = load_compose(compose_file, env_file)
    addresses, secrets = addresses or {}, secrets or {}
    runs: dict[str, ContainerRun] = {}
    for name, service in model["services"].items():
        if service.get("image") != MADINA_IMAGE:
            continue
        env: dict[str, str] = {}
        for each in service.get("env_file", []):
            path = each if isinstance(each, str) else each["path"]
            env.update(parse_env_file((compose_file.parent / path).read_text(encoding="utf-8")))
        env.update(_environment(service.get("environment")))
        runs[name] = ContainerRun(
            service=name,
            argv=["madina", *service.get("command", [])],
            env={key: _rewrite(value, addresses, secrets) for key, value in env.items()},
            profiles=list(service.get("profiles", [])),
            secrets=[s if isinstance(s, str) else s["source"] for s in service.get("secrets", [])],
        )
    return runs
