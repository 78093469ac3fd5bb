"""Free loopback ports for the private servers and processes that tests and `madina up` start."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the OS picks it; a race with another binder is possible
    but rare, and every caller fails loudly if it happens)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
