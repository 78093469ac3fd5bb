"""Pure environment logic: plain values in, plain values out, no Kafka, gRPC or HTTP.

* :mod:`.measurands` - measurand catalogue, ``Observation``, plausibility validation for ingest.
* :mod:`.windows` - event-time rolling means with bounded lateness (energetic for noise).
* :mod:`.aqi` - US EPA AQI with the 2024 PM2.5 breakpoints.
* :mod:`.profiles` - versioned threshold profiles loaded from YAML, each rule citing its source.
* :mod:`.stations` - station metadata loaded from YAML and checked against ``madina.geo``.
* :mod:`.evaluator` - ``apply_observations``: one station's batch -> state, alerts, AQI, rejects.
* :mod:`.hourly` - clock-hour means and their validity (75 % of the hour).
* :mod:`.nowcast` - EPA NowCast for PM: the current AQI from the last 12 hourly means.
* :mod:`.compliance` - calendar-year exceedances vs. allowances, allowance alerts, daily and annual means.
* :mod:`.replay` - run the evaluator over recorded observations; compare two runs' episodes.

Typical wiring::

    profiles = load_profiles(settings.environment_extra_profile_files)
    rules = select_rules(profiles, settings.environment_profiles)  # e.g. ["who-2021", "who-water-2022"]
    state, transitions, aqi, rejected = apply_observations(state, batch, rules, station)
"""

from services.environment.domain.aqi import AqiResult, compute_aqi
from services.environment.domain.evaluator import (
    BatchResult,
    EvaluatorConfig,
    RejectCode,
    Rejection,
    RuleState,
    StationState,
    apply_observations,
    check_data_gaps,
)
from services.environment.domain.measurands import (
    MEASURANDS,
    Observation,
    StationKind,
    validate_observation,
    validate_values,
)
from services.environment.domain.profiles import (
    Profile,
    ProfileError,
    Rule,
    load_profiles,
    resolve_profile,
    select_rules,
)
from services.environment.domain.stations import Station, StationDataError, load_stations
from services.environment.domain.windows import StationWindows, WindowMean, WindowSpec

__all__ = [
    "MEASURANDS",
    "AqiResult",
    "BatchResult",
    "EvaluatorConfig",
    "Observation",
    "Profile",
    "ProfileError",
    "RejectCode",
    "Rejection",
    "Rule",
    "RuleState",
    "Station",
    "StationDataError",
    "StationKind",
    "StationState",
    "StationWindows",
    "WindowMean",
    "WindowSpec",
    "apply_observations",
    "check_data_gaps",
    "compute_aqi",
    "load_profiles",
    "load_stations",
    "resolve_profile",
    "select_rules",
    "validate_observation",
    "validate_values",
]
