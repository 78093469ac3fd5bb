"""pytest plugin that lets kafka-python's own integration suite run, unchanged, against a given broker.

Loaded with ``-p`` by ``test_kafka_python_suite.py`` into a pytest run inside the unpacked
kafka-python sdist, with ``KAFKA_URI`` (the broker), ``KAFKA_VERSION`` (the Kafka release the
broker is) and ``KAFKA_PYTHON_SDIST`` (the sdist's root) in the environment. The suite's
test files are not touched; this plugin only supplies what the sdist lacks:

- its ``test`` directory has no ``__init__.py``, so Python's own ``test`` package shadows
  it; the plugin registers it as the ``test`` package first;
- ``test/service.py`` (the process wrappers for brokers it spawns) is not in the sdist;
  an external broker needs none, so it is stubbed;
- ``KafkaFixture(external=True)`` still logs a temporary directory it does not have and
  formats KRaft log directories, so its ``instance`` is replaced, for external brokers
  only, by a fixture that just holds the address.

``EXCLUDED`` lists the tests that cannot run against a plaintext single-node broker
given from outside, each with its reason; they are reported as skipped.
"""

from __future__ import annotations

import os
import sys
import types

import pytest

EXCLUDED: dict[str, str] = {
    "test_ssl_integration.py": "needs an SSL listener: the suite spawns its own SSL broker from a Kafka "
    "distribution (not in the sdist); the embedded broker speaks plaintext only",
    "test_sasl_integration.py": "needs SASL listeners on a broker the suite spawns itself (no SASL in the "
    "embedded broker)",
    "test_admin_integration.py::test_create_describe_delete_acls": "needs an authorizer: the embedded broker "
    "has no ACLs and answers SECURITY_DISABLED, as Kafka without authorizer.class.name does",
}


def _install_test_package() -> None:
    root = os.environ["KAFKA_PYTHON_SDIST"]
    package = types.ModuleType("test")
    package.__path__ = [os.path.join(root, "test")]
    sys.modules["test"] = package

    service = types.ModuleType("test.service")

    class _NotSpawned:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("this harness only runs the suite against an external broker (KAFKA_URI)")

    service.ExternalService = _NotSpawned  # type: ignore[attr-defined]
    service.SpawnedService = _NotSpawned  # type: ignore[attr-defined]
    sys.modules["test.service"] = service

    from test.integration import fixtures  # type: ignore[import-not-found]

    original = fixtures.KafkaFixture.instance

    def instance(cls, broker_id, *args, external=False, **kwargs):
        if not external:
            return original.__func__(cls, broker_id, *args, external=external, **kwargs)
        fixture = object.__new__(cls)
        fixture.__dict__.update(
            child=None,
            external=True,
            running=True,
            host=kwargs.get("host") or "localhost",
            port=kwargs["port"],
            broker_id=broker_id,
            transport=kwargs.get("transport", "PLAINTEXT").upper(),
            sasl_mechanism=None,
            replicas=kwargs.get("replicas", 1),
            partitions=kwargs.get("partitions", 4),
            auto_create_topic=True,
            tmp_dir=None,
            zookeeper=None,
            ssl_dir=None,
        )
        return fixture

    fixtures.KafkaFixture.instance = classmethod(instance)


def pytest_load_initial_conftests(early_config, parser, args):
    # Before the suite's conftest is imported, and only when loaded with ``-p``.
    _install_test_package()


def pytest_collection_modifyitems(items):
    for item in items:
        module = os.path.basename(str(item.fspath))
        reason = EXCLUDED.get(module) or EXCLUDED.get(f"{module}::{item.name}")
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason="excluded: " + reason))
