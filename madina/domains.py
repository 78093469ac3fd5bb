"""How domain services plug into the shared core.

Each domain package (``services/<domain>/plugin.py``) exposes a :class:`Domain` through the
``madina.domains`` entry-point group in pyproject.toml. The CLI, ``madina up``, ``madina topics``
and the simulator discover domains there, so adding mobility, energy or waste touches no shared
code. Nothing here imports a domain's runtime code: components name their entry point as a
dotted path that is imported only when the component runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points

from madina.bus.topics import TopicSpec
from madina.maplayers import MapLayer

ENTRY_POINT_GROUP = "madina.domains"

# Who uses a local city (`madina up`, madina.localsecrets): each gets a token with the scopes that
# the domains grant it. Deployments write their own credentials file (`madina agency`).
OPERATOR = "operator"  # city staff at the dashboard
VIEWER = "viewer"  # read-only dashboard
DEVICE = "simulator"  # the simulator, standing in for sensors and feeds
PARTNER = "partner-demo"  # a partner agency over gRPC
READERS = (OPERATOR, VIEWER, PARTNER)
PUBLISHERS = (DEVICE, PARTNER)
CONTROLLERS = (OPERATOR,)


@dataclass(frozen=True)
class Scope:
    """A permission a domain's APIs check (``<area>:<verb>``, e.g. ``energy:control``)."""

    name: str
    description: str
    local_principals: Sequence[str] = ()  # which local principals get it (READERS, PUBLISHERS, ...)


@dataclass(frozen=True)
class Component:
    """One process of a domain, run by ``madina service NAME``."""

    name: str
    entry_point: str  # "package.module:function", called with no arguments, returns an exit code
    description: str
    # Where `madina up` waits for readiness and what it prints; {port} is not expanded here,
    # components read their own settings. A URL of None means "running is ready enough".
    health_url: Callable[[], str | None] = field(default=lambda: None)
    urls: Callable[[], dict[str, str]] = field(default=dict)

    def load(self) -> Callable[[], int]:
        return load_entry_point(self.entry_point)  # type: ignore[return-value]


@dataclass(frozen=True)
class Domain:
    """What a domain brings: its topics, its processes and its simulator."""

    name: str
    topics: Sequence[TopicSpec]
    components: Sequence[Component]
    simulator: str | None = None  # "module:factory" returning a madina.simulation.Generator
    start_order: int = 50  # consumers of other domains' topics (operations) start after producers
    scopes: Sequence[Scope] = ()  # what its APIs check; local principals and docs derive from these
    # "module:function" that `madina up` calls with (data_dir, children's env) before any component
    # starts, to run a local server the domain needs (e.g. an MQTT broker); it may add settings to
    # the env and returns the callable that stops the server.
    local_servers: Sequence[str] = ()
    # What it shows on the operations map (madina.maplayers): topics it publishes and the pure
    # functions that turn their records into map features.
    map_layers: Sequence[MapLayer] = ()

    def scope(self, name: str) -> str:
        """``name`` as declared here (a typo fails at import, not as a 403 in production)."""
        for scope in self.scopes:
            if scope.name == name:
                return scope.name
        raise KeyError(f"domain {self.name} declares no scope {name!r}")


def load_entry_point(dotted: str) -> Callable[..., object]:
    """``"package.module:attribute"``, imported now."""
    module_name, _, attribute = dotted.partition(":")
    return getattr(importlib.import_module(module_name), attribute)  # type: ignore[no-any-return]


def discover() -> list[Domain]:
    """Every installed domain, in start order."""
    domains = [entry.load() for entry in entry_points(group=ENTRY_POINT_GROUP)]
    return sorted(domains, key=lambda domain: (domain.start_order, domain.name))


def component(name: str) -> Component:
    for domain in discover():
        for candidate in domain.components:
            if candidate.name == name:
                return candidate
    known = ", ".join(c.name for d in discover() for c in d.components)
    raise KeyError(f"unknown service {name!r}; known: {known or 'none installed'}")


def all_scopes(domains: Sequence[Domain] | None = None) -> list[Scope]:
    """Every scope the installed domains declare, in start order."""
    return [scope for domain in (discover() if domains is None else domains) for scope in domain.scopes]


def local_principals(domains: Sequence[Domain] | None = None) -> dict[str, list[str]]:
    """The local principals and the scopes the domains grant each."""
    granted: dict[str, list[str]] = {principal: [] for principal in (OPERATOR, VIEWER, DEVICE, PARTNER)}
    for scope in all_scopes(domains):
        for principal in scope.local_principals:
            granted.setdefault(principal, []).append(scope.name)
    return granted


def all_topics() -> list[TopicSpec]:
    """The shared registry plus every domain's topics, registered on the way."""
    from madina.bus.topics import REGISTRY

    for domain in discover():
        for spec in domain.topics:
            REGISTRY.register(spec)
    return list(REGISTRY)
