import pytest

from madina.bus.topics import ALERTS, REGISTRY, TopicRegistry, TopicSpec
from madina.domains import all_topics
from madina_proto.alerts.v1 import alerts_pb2


def _spec(name: str, **kwargs: object) -> TopicSpec:
    return TopicSpec(name=name, message_type=alerts_pb2.AlertEvent, key="id", description="d", **kwargs)  # type: ignore[arg-type]


def test_names_must_follow_domain_event_version() -> None:
    registry = TopicRegistry()
    for bad in ("Environment.Air.v1", "environment.air", "environment..v1", "environment.air.1"):
        with pytest.raises(ValueError, match="does not follow"):
            registry.register(_spec(bad))
    registry.register(_spec("environment.air-quality.v1"))


def test_registering_the_same_name_differently_is_refused() -> None:
    registry = TopicRegistry()
    registry.register(_spec("x.y.v1"))
    registry.register(_spec("x.y.v1"))
    with pytest.raises(ValueError, match="already registered"):
        registry.register(_spec("x.y.v1", partitions=8))


def test_every_topic_has_a_dead_letter_twin_carrying_the_same_type() -> None:
    dlq = ALERTS.dead_letter
    assert dlq.name == "alerts.v1.dlq"
    assert dlq.message_type is ALERTS.message_type
    assert dlq.retention_ms >= ALERTS.retention_ms


def test_topic_config_reports_cleanup_and_retention() -> None:
    config = _spec("x.y.v1", cleanup_policy="compact", retention_ms=1000).topic_config()
    assert config == {"cleanup.policy": "compact", "retention.ms": "1000"}


def test_unknown_topic_lookup_lists_the_registered_ones() -> None:
    with pytest.raises(KeyError, match=r"alerts\.v1"):
        REGISTRY.get("nope.v1")


def test_installed_domains_register_their_topics() -> None:
    names = {spec.name for spec in all_topics()}
    assert {"alerts.v1", "alerts.actions.v1"} <= names
