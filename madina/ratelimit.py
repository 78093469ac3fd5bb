"""Token buckets: how often a principal may call, and how often an address may fail to authenticate.

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second; a call takes one,
and a call that finds none is refused with the time until one is back (HTTP ``Retry-After``).
:class:`KeyedBuckets` keeps one bucket per key (principal id, client address) and forgets the
least recently used keys past ``max_keys``, so a flood of new addresses cannot grow it without
bound; a forgotten key starts again with a full bucket.

Pure and clock-injected, so tests drive it with a fake clock. pyrate-limiter (in the dev lock via
schemathesis) was not taken: it is not a runtime dependency, it has no "seconds until the next
token" to put in ``Retry-After``, and per-key rates that change when the credentials file is
re-read would mean rebuilding its limiters; the whole algorithm is the few lines below.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    """``per_s`` tokens a second, at most ``burst`` at once."""

    per_s: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_s <= 0 or self.burst < 1:
            raise ValueError(f"a rate limit needs per_s > 0 and burst >= 1 (got {self.per_s}, {self.burst})")


class TokenBucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, rate: Rate, now: float) -> None:
        self.tokens = float(rate.burst)
        self.updated = now

    def _refill(self, rate: Rate, now: float) -> None:
        # The rate is passed on every call so a changed limit applies at once to a live bucket.
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(float(rate.burst), self.tokens + elapsed * rate.per_s)
        self.updated = now

    def wait(self, rate: Rate, now: float) -> float:
        """Seconds until a token is available (0 if one is now), without taking it."""
        self._refill(rate, now)
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / rate.per_s

    def take(self, rate: Rate, now: float) -> float:
        """Take a token and return 0, or return the seconds until one is available."""
        waiting = self.wait(rate, now)
        if waiting == 0.0:
            self.tokens -= 1.0
        return waiting


class KeyedBuckets:
    """One :class:`TokenBucket` per key, least recently used keys forgotten past ``max_keys``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def _bucket(self, key: str, rate: Rate, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(rate, now)
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def take(self, key: str, rate: Rate) -> float:
        now = self._clock()
        return self._bucket(key, rate, now).take(rate, now)

    def wait(self, key: str, rate: Rate) -> float:
        if key not in self._buckets:
            return 0.0
        now = self._clock()
        return self._bucket(key, rate, now).wait(rate, now)

    def __len__(self) -> int:
        return len(self._buckets)
