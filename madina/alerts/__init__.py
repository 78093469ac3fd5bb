"""Alert semantics shared by every domain (environment, mobility, energy, waste).

Pure and transport-free: callers feed rule evaluations in, get
:class:`~madina.alerts.model.AlertTransition` values out, and publish them themselves. All state
is a frozen dataclass with ``to_dict``/``from_dict`` so it can live in a changelogged table, and
every function is deterministic in its inputs (event time only, never the wall clock) so a replay
after a crash yields the same alert ids and revisions.

* :mod:`madina.alerts.model`: ``Severity``, ``AlertState``, ``AlertTransition`` and its
  ``AlertDetails``, ``alert_id``.
* :mod:`madina.alerts.episode`: per-(domain, source, rule) episode machine with hysteresis.
* :mod:`madina.alerts.datagap`: ``data-gap`` alerts for silent sources.
"""

from madina.alerts.datagap import (
    DATA_GAP_RULE_ID,
    DataGapPolicy,
    DataGapState,
    check_silence,
    record_observation,
)
from madina.alerts.episode import EpisodePolicy, EpisodeState, Evaluation, force_clear, quiet_step, step, touch
from madina.alerts.model import AlertDetails, AlertState, AlertTransition, Severity, alert_id

__all__ = [
    "DATA_GAP_RULE_ID",
    "AlertDetails",
    "AlertState",
    "AlertTransition",
    "DataGapPolicy",
    "DataGapState",
    "EpisodePolicy",
    "EpisodeState",
    "Evaluation",
    "Severity",
    "alert_id",
    "check_silence",
    "force_clear",
    "quiet_step",
    "record_observation",
    "step",
    "touch",
]
