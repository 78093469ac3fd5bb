"""The JSON the REST API and the SSE stream send is always JSON, whatever numbers an alert holds."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from services.operations.api.http import EncodedChanges
from services.operations.api.views import alert_json, history_json
from services.operations.domain import Change
from services.operations.domain.model import GeoPoint
from tests.unit.operations.factories import minutes, raised


def _strict(text: str) -> object:
    def refuse(constant: str) -> None:
        raise AssertionError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_go_out_as_null_on_the_stream_and_in_history(value: float) -> None:
    alert = raised()
    alert = replace(alert, latest=replace(alert.latest, observed_value=value, threshold_value=value))
    change = Change(seq=7, alert=alert, cause="event", occurred_time=minutes(1))
    sent = _strict(EncodedChanges()(change))
    assert sent["alert"]["observed_value"] is None and sent["alert"]["threshold_value"] is None  # type: ignore[index]
    assert _strict(json.dumps(history_json(change)))["detail"]["observed_value"] is None  # type: ignore[index]


@pytest.mark.parametrize(("lat", "lon"), [(1000.0, 0.0), (0.0, -181.0), (float("nan"), 0.0)])
def test_a_position_off_the_globe_goes_out_as_no_position(lat: float, lon: float) -> None:
    alert = raised()
    alert = replace(alert, latest=replace(alert.latest, location=GeoPoint(lat, lon)))
    assert alert_json(alert)["location"] is None
    on_earth = replace(alert, latest=replace(alert.latest, location=GeoPoint(33.6, -7.5)))
    assert alert_json(on_earth)["location"] == {"lat": 33.6, "lon": -7.5}
