"""Property-based checks of a running HTTP service against its own OpenAPI, with schemathesis.

A service is fuzzed over TCP, like any client would reach it: every documented operation, with
generated valid and invalid inputs, as several principals. A run fails on any 5xx, any status the
operation does not document, and any body that breaks its documented schema. Runs are
derandomized and bounded by ``max_examples`` so that they take the same (short) time every time.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
T = TypeVar("T")


def fuzz_settings(max_examples: int) -> Any:
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


def load_schema(base_url: str) -> Any:
    return schemathesis.openapi.from_url(f"{base_url}/openapi.json")


def fuzz(schema: Any, principals: dict[str, dict[str, str]], max_examples: int) -> list[str]:
    """Send ``max_examples`` generated requests (valid and invalid) per operation of ``schema``, each
    once per principal (name -> headers); the failures, one line per operation, empty if none."""
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        strategy = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
        )

        @given(case=strategy)
        @fuzz_settings(max_examples)
        def send(case: Any) -> None:
            for name, headers in principals.items():
                try:
                    case.call_and_validate(headers=headers, checks=CHECKS)
                except (AssertionError, BaseExceptionGroup) as failure:
                    failure.add_note(f"sent as {name}")
                    raise

        try:
            send()
        except (Exception, BaseExceptionGroup) as failure:  # schemathesis groups its failures
            details = [str(error) for error in getattr(failure, "exceptions", ())] or [str(failure)]
            notes = "; ".join(getattr(failure, "__notes__", []))
            failures.append(f"{operation.label} ({notes}): " + "\n".join(details))
    return failures


@contextlib.contextmanager
def in_thread(factory: Callable[[], AbstractAsyncContextManager[T]], timeout_s: float = 60.0) -> Iterator[T]:
    """Enter ``factory()`` on an event loop of its own in a daemon thread; yield what it yields.

    Schemathesis calls the service synchronously, so the service cannot share the test's loop.
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="api-under-fuzz", daemon=True)
    thread.start()
    entered: Future[T] = Future()
    leave = asyncio.Event()

    async def hold() -> None:
        try:
            async with factory() as value:
                entered.set_result(value)
                await leave.wait()
        except BaseException as error:
            if not entered.done():
                entered.set_exception(error)
            raise

    held = asyncio.run_coroutine_threadsafe(hold(), loop)
    try:
        yield entered.result(timeout_s)
    finally:
        loop.call_soon_threadsafe(leave.set)
        with contextlib.suppress(Exception):
            held.result(timeout_s)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
