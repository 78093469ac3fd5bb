"""Embedded single-node Kafka-wire-compatible broker: Madina without Java or Docker.

Unmodified Kafka clients (aiokafka/faust, kafka-python, librdkafka) talk to it over TCP.
It answers as Apache Kafka 3.0 does (``protocol.KAFKA_RELEASE``: that release's API version
ceilings, transactions included), without replication, security or KRaft. Run it with
``madina broker`` or ``python -m madina.broker --port 0 --memory``; embed it with
``Broker(BrokerConfig(...))``. Modules:

- ``server``: configuration, connections, dispatch, ``Broker`` and ``serve``;
- ``protocol``: request headers, the supported API versions, response framing;
- ``handlers``: one handler per Kafka API;
- ``admin``: configs, DeleteRecords, log dirs, and the features a single node without
  security answers as off (ACLs, SCRAM, replica placement);
- ``log``: partition segments, their index, recovery, retention, and each partition's
  open and aborted transactions;
- ``cleaner``: log compaction of ``cleanup.policy=compact`` topics;
- ``groups``: the consumer group coordinator and committed offsets;
- ``transactions``: the transaction coordinator and its durable log;
- ``records``: the 61-byte record batch header and transaction markers.
"""

from madina.broker.server import Broker, BrokerConfig, serve

__all__ = ["Broker", "BrokerConfig", "serve"]
