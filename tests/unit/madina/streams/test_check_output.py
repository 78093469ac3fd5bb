"""A step's snapshot must go to one of the processor's outputs and be of the type its topic carries."""

from __future__ import annotations

import pytest

from madina.bus import ALERTS, KPIS
from madina.streams.entities import check_output
from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.kpis.v1 import kpis_pb2


def test_a_snapshot_of_its_topics_type_to_an_output_passes() -> None:
    check_output(KPIS, kpis_pb2.KpiObserved(kpi_id="x"), {KPIS.name}, "app")


def test_a_snapshot_of_another_type_names_both_types() -> None:
    with pytest.raises(TypeError, match=r"kpis\.v1 carries madina\.kpis\.v1\.KpiObserved, not .*AlertEvent"):
        check_output(KPIS, alerts_pb2.AlertEvent(), {KPIS.name}, "app")


def test_a_snapshot_to_a_topic_that_is_not_an_output_is_refused() -> None:
    with pytest.raises(KeyError, match="is not an output of app"):
        check_output(ALERTS, alerts_pb2.AlertEvent(), {KPIS.name}, "app")
