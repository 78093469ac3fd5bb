"""Embedded single-node Kafka-wire-compatible broker: Madina without Java or Docker.

Unmodified Kafka clients (aiokafka/faust, kafka-python, librdkafka) talk to it over TCP.
Run it with ``madina broker`` or ``python -m madina.broker --port 0 --memory``; embed it
with ``Broker(BrokerConfig(...))``. Modules:

- ``server``: configuration, connections, dispatch, ``Broker`` and ``serve``;
- ``protocol``: request headers, the supported API versions, response framing;
- ``handlers``: one handler per Kafka API;
- ``log``: partition segments, their index, recovery and retention;
- ``cleaner``: log compaction of ``cleanup.policy=compact`` topics;
- ``groups``: the consumer group coordinator and committed offsets;
- ``records``: the 61-byte record batch header.
"""

from madina.broker.server import Broker, BrokerConfig, serve

__all__ = ["Broker", "BrokerConfig", "serve"]
