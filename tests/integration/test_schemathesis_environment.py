"""The environment API answers what its OpenAPI says, whatever a device or dashboard sends.

Schemathesis generates requests, valid and invalid, for every documented operation (ingest of each
kind, stations, station status, health) and sends them to the real service (uvicorn, the runtime
producing to a broker over TCP) as a publisher, as a reader and without a token: no 5xx, no status
the operation does not document, no body that breaks its schema.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from services.environment.api.http import create_http_app
from tests.integration.environment.api_fixtures import EnvironmentApi, running_environment_api, serving_http
from tests.support.api_fuzz import fuzz, in_thread, load_schema

MAX_EXAMPLES = 50
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")


@contextlib.asynccontextmanager
async def _serving(kafka_bootstrap: str, directory: Path) -> AsyncIterator[tuple[EnvironmentApi, str]]:
    # Generated requests without a valid token would soon lock the test's address out (429).
    async with running_environment_api(
        kafka_bootstrap, directory, auth_failures_burst=1_000_000, rate_limit_burst=1_000_000
    ) as api, serving_http(create_http_app(api.runtime)) as base_url:
        yield api, base_url


@pytest.fixture(scope="module")
def served(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EnvironmentApi, str]]:
    directory = tmp_path_factory.mktemp("environment-fuzz")
    with in_thread(lambda: _serving(kafka_bootstrap, directory)) as running:
        yield running


def test_environment_api_answers_as_documented_to_generated_requests(served: tuple[EnvironmentApi, str]) -> None:
    api, base_url = served
    principals = {
        "publisher": {"Authorization": f"Bearer {api.publisher_token}"},
        "reader": {"Authorization": f"Bearer {api.reader_token}"},
        "anonymous": {},
    }
    started = time.monotonic()
    failures = fuzz(load_schema(base_url), principals, MAX_EXAMPLES)
    print(f"schemathesis run of the environment API: {time.monotonic() - started:.1f} s")
    assert not failures, "\n\n".join(failures)
