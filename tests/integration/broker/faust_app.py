"""A minimal faust app for the broker suite: an agent counting records into a Table.

Run by the test as ``faust -A tests.integration.broker.faust_app worker -l info`` with
FAUST_TEST_BROKER, FAUST_TEST_APP_ID and FAUST_TEST_TOPIC set. Every processed record is
printed as ``processed <value>``, so the test can wait on output instead of sleeping.
"""

from __future__ import annotations

import os

import faust

PARTITIONS = 2

app = faust.App(
    os.environ.get("FAUST_TEST_APP_ID", "madina-broker-test"),
    broker="kafka://" + os.environ.get("FAUST_TEST_BROKER", "127.0.0.1:9092"),
    store="memory://",
    web_enabled=False,
    topic_partitions=PARTITIONS,
)
source = app.topic(
    os.environ.get("FAUST_TEST_TOPIC", "faust-source"), key_type=str, value_type=str, partitions=PARTITIONS
)
counts = app.Table("counts", default=int, partitions=PARTITIONS)


@app.agent(source)
async def count_records(stream):
    async for key, value in stream.items():
        counts[key] += 1
        print(f"processed {value} count={counts[key]}", flush=True)
