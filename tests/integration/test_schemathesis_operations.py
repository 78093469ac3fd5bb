"""The operations center's REST API answers what its OpenAPI says, whatever a client sends.

Schemathesis generates requests, valid and invalid, for every documented operation and sends them
to the real service over TCP, as an operator, as a read-only viewer and without a token: no 5xx,
no status the operation does not document, no body that breaks its schema. ``/api/v1/stream`` is
left out: its 200 is an endless event stream (its parameters are tested in operations/test_sse.py
and operations/test_request_hardening.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.support.api_fuzz import fuzz, load_schema
from tests.support.operations import RunningService, running_service
from tests.support.processes import BrokerProcess

MAX_EXAMPLES = 50
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    directory = tmp_path_factory.mktemp("operations-fuzz")
    broker = BrokerProcess.start(memory=True, default_partitions=1)
    try:
        with running_service(
            directory, broker.bootstrap, f"sqlite:///{directory / 'operations.db'}", max_body_bytes=16384,
            # Generated requests without a valid token would soon lock the test's address out (429).
            auth_failures_burst=1_000_000, rate_limit_burst=1_000_000,
        ) as running:
            yield running
    finally:
        broker.stop()


def test_operations_api_answers_as_documented_to_generated_requests(service: RunningService) -> None:
    schema = load_schema(service.http_url).exclude(path="/api/v1/stream")
    principals = {"operator": service.auth("operator"), "viewer": service.auth("viewer"), "anonymous": {}}
    started = time.monotonic()
    failures = fuzz(schema, principals, MAX_EXAMPLES)
    print(f"schemathesis run of the operations API: {time.monotonic() - started:.1f} s")
    assert not failures, "\n\n".join(failures)
