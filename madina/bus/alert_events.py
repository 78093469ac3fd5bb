"""From a domain's AlertTransition to an AlertEvent on ``alerts.v1``, published exactly once.

Processors are at-least-once: after a crash they replay from the last committed offset, and
their deterministic alert logic re-creates the same transitions with the same
``(alert_id, revision)``. :class:`AlertLedger` remembers which of those are already on the topic
(it reads ``alerts.v1`` back on start-up and after each rebalance), so the replay publishes only
what is missing: none lost, none doubled.

A processor that had to wait for every alert's acknowledgement before writing the state that
remembers it would spend most of its time waiting (measured: a third of the environment
processor's throughput). :class:`AlertOutbox` lets it write the state at once instead: the state
carries the transitions whose acknowledgement was still outstanding (a transactional outbox), and
whoever next takes over that state publishes the ones the ledger has not seen.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from madina.alerts import AlertDetails, AlertTransition
from madina.bus.reader import read_topic
from madina.bus.topics import ALERTS
from madina.contract import plain_fields
from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.common.v1 import common_pb2

log = logging.getLogger(__name__)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(moment: object) -> Timestamp:
    """``moment`` as a protobuf Timestamp, exactly as ``Timestamp.FromDatetime`` makes it."""
    if type(moment) is datetime and moment.tzinfo is UTC:
        # Every event, snapshot and alert carries a few times, nearly all of them UTC datetimes:
        # the arithmetic here costs a fraction of FromDatetime's (a timetuple, then calendar.timegm).
        # Any UTC datetime is inside Timestamp's range (years 1 to 9999), so nothing to check.
        since_epoch = moment - _EPOCH
        return Timestamp(seconds=since_epoch.days * 86_400 + since_epoch.seconds, nanos=moment.microsecond * 1000)
    stamp = Timestamp()
    stamp.FromDatetime(moment)  # type: ignore[arg-type]
    return stamp


_DETAIL_FIELDS = plain_fields(AlertDetails, alerts_pb2.AlertEvent)
"""What AlertDetails and AlertEvent spell alike (category, unit, standard reference, ...)."""


def to_alert_event(
    transition: AlertTransition,
    *,
    district: common_pb2.District | None = None,
    location: common_pb2.GeoPoint | None = None,
) -> alerts_pb2.AlertEvent:
    """The wire form of ``transition``; its details give the rest of the event.

    ``district`` stands in for the details' city and district ids where the caller knows more
    (a display name); ``location`` is the source's position, which only the caller knows.
    """
    details = transition.details
    event = alerts_pb2.AlertEvent(
        **{name: getattr(details, name) for name in _DETAIL_FIELDS},
        alert_id=transition.alert_id,
        revision=transition.revision,
        domain=transition.domain,
        rule_id=transition.rule_id,
        source=common_pb2.EntityRef(
            domain=transition.domain, kind=details.source_kind, entity_id=transition.source_id
        ),
        severity=int(transition.severity),  # type: ignore[arg-type]
        state=int(transition.state),  # type: ignore[arg-type]
        observed_value=transition.observed_value,
        threshold_value=transition.threshold,
        raise_time=timestamp(transition.raise_time),
        event_time=timestamp(transition.event_time),
        message=transition.message,
        labels=dict(details.labels),
    )
    if not event.category:
        event.category = transition.rule_id
    if transition.clear_time is not None:
        event.clear_time.CopyFrom(timestamp(transition.clear_time))
    if district is not None:
        event.district.CopyFrom(district)
    elif details.city_id or details.district_id:
        event.district.CopyFrom(common_pb2.District(city_id=details.city_id, district_id=details.district_id))
    if location is not None:
        event.location.CopyFrom(location)
    return event


class AlertLedger:
    """The highest revision already on ``alerts.v1`` per alert id, for one domain."""

    def __init__(self, domain: str) -> None:
        self.domain = domain
        self._revisions: dict[str, int] = {}

    def already_published(self, alert_id: str, revision: int) -> bool:
        return revision <= self._revisions.get(alert_id, 0)

    def record(self, alert_id: str, revision: int) -> None:
        if revision > self._revisions.get(alert_id, 0):
            self._revisions[alert_id] = revision

    def __len__(self) -> int:
        return len(self._revisions)

    def revisions(self) -> dict[str, int]:
        return dict(self._revisions)

    async def load(self, bootstrap: str, timeout_s: float = 60.0) -> None:
        """Read ``alerts.v1`` from the start to its current end and remember this domain's revisions."""

        def remember(key: str, event: alerts_pb2.AlertEvent | None) -> None:
            if event is not None and event.domain == self.domain:
                self.record(event.alert_id, event.revision)

        await asyncio.wait_for(
            read_topic(bootstrap, ALERTS, remember, follow=False, wait_for_topic=False), timeout_s
        )
        log.info("alert ledger loaded", extra={"domain": self.domain, "alerts": len(self._revisions)})


class AlertOutbox:
    """Alert transitions sent but not yet known to be on ``alerts.v1``, kept inside processor state.

    The outbox itself is a plain ``{"<alert_id>#<revision>": base64 AlertEvent}`` mapping stored
    in the processor's state (so it travels through a faust changelog as JSON); this object holds
    what the running process knows about acknowledgements. The protocol, per state write:

    1. :meth:`prune` the entries acknowledged since the state was last written;
    2. publish each new transition and :meth:`stage` it (``confirm`` runs on its acknowledgement);
    3. write the state without waiting.

    A crash between the state write and an acknowledgement leaves the entry in the stored state;
    after a restart or rebalance :meth:`unpublished` names the entries the ledger has not seen.
    """

    def __init__(self, ledger: AlertLedger) -> None:
        self.ledger = ledger
        self._acknowledged: dict[str, int] = {}

    @staticmethod
    def stage(outbox: MutableMapping[str, str], event: alerts_pb2.AlertEvent) -> None:
        outbox[f"{event.alert_id}#{event.revision}"] = base64.b64encode(event.SerializeToString()).decode()

    def confirm(self, alert_id: str, revision: int) -> None:
        if revision > self._acknowledged.get(alert_id, 0):
            self._acknowledged[alert_id] = revision

    def confirm_loaded(self) -> None:
        """Call right after :meth:`AlertLedger.load`: what was read back from the topic is acknowledged."""
        for alert_id, revision in self.ledger.revisions().items():
            self.confirm(alert_id, revision)

    def prune(self, outbox: MutableMapping[str, str]) -> None:
        if not outbox:
            return
        for entry in [entry for entry in outbox if self._is_acknowledged(entry)]:
            del outbox[entry]

    def unpublished(self, outbox: Mapping[str, str]) -> list[alerts_pb2.AlertEvent]:
        """The staged events missing from the ledger, oldest revision of each alert first."""
        events = [alerts_pb2.AlertEvent.FromString(base64.b64decode(raw)) for raw in outbox.values()]
        missing = [e for e in events if not self.ledger.already_published(e.alert_id, e.revision)]
        return sorted(missing, key=lambda e: (e.alert_id, e.revision))

    def _is_acknowledged(self, entry: str) -> bool:
        alert_id, _, revision = entry.rpartition("#")
        return int(revision) <= self._acknowledged.get(alert_id, 0)
