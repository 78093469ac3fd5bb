"""A faust app with ``processing_guarantee="exactly_once"`` for the broker suite.

Its agent copies each record of the source to a sink topic and counts it in a Table, so
every output (sink record, changelog entry, source offset) is written in faust's
transactions. Run by ``test_broker_transactions_faust.py`` as
``faust -A tests.integration.broker.faust_eos_app worker -l info`` with FAUST_TEST_BROKER,
FAUST_TEST_APP_ID and FAUST_TEST_TOPIC set; every record is printed as ``processed <value>``.
"""

from __future__ import annotations

import os

import faust

PARTITIONS = 2
APP_ID = os.environ.get("FAUST_TEST_APP_ID", "madina-broker-eos-test")
SOURCE = os.environ.get("FAUST_TEST_TOPIC", "faust-eos-source")

app = faust.App(
    APP_ID,
    broker="kafka://" + os.environ.get("FAUST_TEST_BROKER", "127.0.0.1:9092"),
    store="memory://",
    web_enabled=False,
    topic_partitions=PARTITIONS,
    processing_guarantee="exactly_once",
)
source = app.topic(SOURCE, key_type=str, value_type=str, partitions=PARTITIONS)
sink = app.topic(f"{SOURCE}-sink", key_type=str, value_type=str, partitions=PARTITIONS)
counts = app.Table("counts", default=int, partitions=PARTITIONS)


@app.agent(source)
async def copy_records(stream):
    async for key, value in stream.items():
        counts[key] += 1
        await sink.send(key=key, value=value)
        print(f"processed {value} count={counts[key]}", flush=True)
