"""How the operations service plugs into Madina (entry point ``madina.domains: operations``).

It consumes the shared alerts and KPI topics (already in the core registry), so it brings no
topics of its own and starts after the domains that produce them."""

from __future__ import annotations

from madina.domains import CONTROLLERS, OPERATOR, PARTNER, READERS, Component, Domain, Scope


def _settings():  # type: ignore[no-untyped-def]
    from madina.settings import load_settings
    from services.operations.settings import OperationsSettings

    return load_settings(OperationsSettings)


def _health() -> str:
    return f"http://127.0.0.1:{_settings().operations_http_port}/healthz"


def _urls() -> dict[str, str]:
    settings = _settings()
    http = f"http://127.0.0.1:{settings.operations_http_port}"
    return {
        "operations dashboard": f"{http}/#token={{operator_token}}",
        "operations REST API": f"{http}/docs",
        "alerts gRPC (TLS)": f"127.0.0.1:{settings.operations_grpc_port}",
    }


DOMAIN = Domain(
    name="operations",
    topics=[],
    components=[
        Component(
            name="operations",
            entry_point="services.operations.api.main:main",
            description="alert store consumer, REST/SSE + dashboard (8080) and AlertService gRPC (50055)",
            health_url=_health,
            urls=_urls,
        )
    ],
    start_order=90,
    scopes=[
        Scope("alerts:read", "Read alerts, their history and KPIs (REST, SSE, ListAlerts, WatchAlerts).", READERS),
        Scope("alerts:ack", "Acknowledge alerts over gRPC (AcknowledgeAlert).", (OPERATOR, PARTNER)),
        Scope("alerts:write", "Alert commands and silences (REST and the dashboard).", CONTROLLERS),
    ],
)
