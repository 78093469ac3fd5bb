"""Start Madina processes for tests and wait on their readiness instead of sleeping.

The command lines live in madina.devservers.launch (`madina up` and the benchmarks use them too).
"""

from __future__ import annotations

from madina.devservers.launch import BROKER_READY_LINE as READY_LINE
from madina.devservers.launch import BrokerProcess, ServiceProcess, wait_for_http

__all__ = ["READY_LINE", "BrokerProcess", "ServiceProcess", "wait_for_http"]
