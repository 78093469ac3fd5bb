"""Pull mode's bookkeeping without a network: conditional-request headers and the error backoff."""

from __future__ import annotations

from services.mobility.api.pull import FeedPoller


def test_conditional_headers_only_once_the_producer_gave_validators() -> None:
    poller = FeedPoller("http://feed", interval_s=15, max_backoff_s=300, max_entities=10)
    assert poller.request_headers() == {"Accept": "application/x-protobuf"}
    poller.etag, poller.last_modified = '"abc"', "Mon, 30 Nov 2026 08:00:00 GMT"
    assert poller.request_headers()["If-None-Match"] == '"abc"'
    assert poller.request_headers()["If-Modified-Since"] == "Mon, 30 Nov 2026 08:00:00 GMT"


def test_backoff_doubles_per_failure_up_to_the_maximum_and_resets_on_success() -> None:
    poller = FeedPoller("http://feed", interval_s=15, max_backoff_s=300, max_entities=10)
    waits = []
    for failures in range(7):
        poller.failures = failures
        waits.append(poller.next_wait_s())
    assert waits == [15, 30, 60, 120, 240, 300, 300]
