"""The waste domain imports no transport: no Kafka, faust, gRPC, FastAPI or protobuf."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_domain_loads_no_transport_module() -> None:
    code = (
        "import sys, services.waste.domain, services.waste.seed\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'aiokafka', 'kafka', 'faust', 'grpc', 'fastapi', 'starlette', 'google', 'madina_proto'})\n"
        "print(','.join(bad))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""
