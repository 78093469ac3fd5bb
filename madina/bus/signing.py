"""Who may publish an alert or an operator action: records of signed topics carry an HMAC of their bytes.

Anyone who can produce to ``alerts.v1`` could otherwise forge an ``AlertEvent`` with a real alert
id and a huge revision. Every reader keeps the highest revision per alert, so the forgery would
suppress every later real revision: operations would never show them, and a processor that
re-reads the topic after a restart would believe them published already and never send them.

The same holds for ``alerts.actions.v1``: a forged "resolve" would close a real alert.

With ``MADINA_ALERT_SIGNING_KEY_FILE`` set (``madina up`` creates the key among its local
secrets; a deployment mounts one), every producer of a signed topic adds
``madina-signature: hmac-sha256=<hex>`` over the topic name, the record key and the value, and
:func:`madina.bus.codec.decode` refuses a record of that topic whose signature is missing or
wrong: consumers dead-letter it with that reason, readers skip it, real revisions keep flowing.
The key is a platform secret, not a partner's: partners reach alerts through the APIs only.

A genuine record replayed is harmless (readers already know its revision or action id and
ignore it), so a signature needs no nonce. Without a key nothing is signed or checked, as before.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Iterable, Sequence
from pathlib import Path

HEADER_SIGNATURE = "madina-signature"
_SCHEME = "hmac-sha256="
MIN_KEY_BYTES = 32
SIGNED_TOPICS = frozenset({"alerts.v1", "alerts.actions.v1"})
"""Topics whose records must come from the platform's own producers: alert events (processors)
and operator actions (operations, after checking the operator's token and scope; a forged
"resolve" would otherwise close any alert). Names, to keep this module free of the topic
registry, which imports the codec that imports this."""


class RecordSigner:
    """Signs and checks records of :data:`SIGNED_TOPICS` with one secret key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"an alert signing key needs at least {MIN_KEY_BYTES} bytes (got {len(key)})")
        self._key = key

    @classmethod
    def from_file(cls, path: Path) -> RecordSigner:
        return cls(path.read_bytes().strip())

    def signature(self, topic: str, key: bytes | None, value: bytes) -> bytes:
        # Lengths first, so that no other split of the same bytes into topic, key and value signs alike.
        key = key or b""
        framed = b"".join((len(topic).to_bytes(4, "big"), topic.encode(), len(key).to_bytes(4, "big"), key, value))
        return (_SCHEME + hmac.new(self._key, framed, hashlib.sha256).hexdigest()).encode()

    def headers(self, topic: str, key: bytes | None, value: bytes) -> list[tuple[str, bytes]]:
        """The signature header for a record of ``topic``; none for a topic that is not signed."""
        if topic not in SIGNED_TOPICS:
            return []
        return [(HEADER_SIGNATURE, self.signature(topic, key, value))]

    def problem(
        self, topic: str, key: bytes | None, value: bytes, headers: Iterable[tuple[str, bytes]] | None
    ) -> str | None:
        """Why this record of ``topic`` is not the platform's own, or ``None`` when it is (or need not be)."""
        if topic not in SIGNED_TOPICS:
            return None
        presented = [raw for name, raw in headers or () if name == HEADER_SIGNATURE]
        if not presented:
            return f"unsigned record on {topic}: only the platform's producers may publish there"
        if len(presented) > 1:
            return f"{len(presented)} signatures on one record of {topic}"
        if not hmac.compare_digest(presented[0], self.signature(topic, key, value)):
            return f"signature does not match the record on {topic}: forged or altered"
        return None


@functools.cache
def configured_signer() -> RecordSigner | None:
    """This process's signer, from ``MADINA_ALERT_SIGNING_KEY_FILE``; ``None`` when unset.

    Read once: every producer and reader of the process signs and checks with the same key.
    """
    from madina.settings import KafkaClientSettings, load_settings

    path = load_settings(KafkaClientSettings).alert_signing_key_file
    return RecordSigner.from_file(path) if path is not None else None


def signed(
    topic: str, key: bytes | None, value: bytes, headers: Sequence[tuple[str, bytes]]
) -> list[tuple[str, bytes]]:
    """``headers`` plus the signature a record of ``topic`` needs from this process (if any)."""
    signer = configured_signer()
    return [*headers, *(signer.headers(topic, key, value) if signer is not None else ())]


def signature_problem(
    topic: str, key: bytes | None, value: bytes, headers: Iterable[tuple[str, bytes]] | None
) -> str | None:
    """Why this process must refuse the record (see :meth:`RecordSigner.problem`); ``None`` without a key."""
    if topic not in SIGNED_TOPICS:
        return None
    signer = configured_signer()
    return signer.problem(topic, key, value, headers) if signer is not None else None
