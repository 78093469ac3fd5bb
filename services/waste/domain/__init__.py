"""Pure waste logic: plain values in, plain values out, no Kafka, faust, gRPC, HTTP or protobuf.

(``pyvroom``, the routing solver :mod:`.planning` calls, is a library like numpy, not transport.)

* :mod:`.containers` - containers, depots, trucks and streams, loaded from the seed YAML.
* :mod:`.readings` - ``Reading`` and ``validate_reading`` (``"field: problem"`` for a 422).
* :mod:`.fillrate` - Theil-Sen fill rate since the last emptying, predicted time to full.
* :mod:`.detector` - ``apply_readings``: one container's batch -> state, alerts, collections,
  status; ``check_data_gap`` for silent sensors.
* :mod:`.kpis` - container fill, full containers per district, collections per day.
* :mod:`.planning` - ``plan_collection``: due containers routed over trucks with VROOM.

Typical wiring::

    containers = {c.id: c for c in load_containers(serving=settings.cities)}
    state, transitions, collections, status, rejected = apply_readings(state, batch, containers[key])
"""

from services.waste.domain.containers import (
    Container,
    Depot,
    Fleet,
    Stream,
    Truck,
    WasteDataError,
    load_containers,
    load_fleet,
)
from services.waste.domain.detector import (
    Collection,
    ContainerState,
    ContainerStatus,
    DetectionConfig,
    RejectCode,
    Rejection,
    StepResult,
    apply_readings,
    check_data_gap,
    container_status,
)
from services.waste.domain.fillrate import FULL_FILL_RATIO, FillEstimate, estimate_fill
from services.waste.domain.kpis import KpiValue, collections_per_day, container_kpis, district_full_counts
from services.waste.domain.planning import (
    CapacityError,
    CollectionPlan,
    ContainerForecast,
    Route,
    plan_collection,
)
from services.waste.domain.readings import Reading, validate_reading

__all__ = [
    "FULL_FILL_RATIO",
    "CapacityError",
    "Collection",
    "CollectionPlan",
    "Container",
    "ContainerForecast",
    "ContainerState",
    "ContainerStatus",
    "Depot",
    "DetectionConfig",
    "FillEstimate",
    "Fleet",
    "KpiValue",
    "Reading",
    "RejectCode",
    "Rejection",
    "Route",
    "StepResult",
    "Stream",
    "Truck",
    "WasteDataError",
    "apply_readings",
    "check_data_gap",
    "collections_per_day",
    "container_kpis",
    "container_status",
    "district_full_counts",
    "estimate_fill",
    "load_containers",
    "load_fleet",
    "plan_collection",
    "validate_reading",
]
