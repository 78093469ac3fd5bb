"""The mobility domain package stays pure: importing it loads no transport or protobuf module."""

from __future__ import annotations

import subprocess
import sys


def test_domain_imports_no_kafka_faust_grpc_fastapi_or_protobuf() -> None:
    code = (
        "import sys, services.mobility.domain as d; import services.mobility.domain.evaluator; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'kafka', 'aiokafka', 'faust', 'grpc', 'fastapi', 'google', 'madina_proto'}); print(','.join(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
