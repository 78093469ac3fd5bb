"""Revoked partner certificates (``MADINA_GRPC_TLS_CRL_FILE``), refused on every RPC.

grpcio's Python API cannot check certificate revocation during the handshake: ``grpc.ssl_server_credentials``
takes only key pairs, root certificates and ``require_client_auth`` (grpcio 1.85). The C core has
CRL checking (``crl_directory``, ``CrlProvider``), but only behind its experimental TLS credentials
API, which Python does not expose. So the check runs one step later: the auth interceptor reads the
client certificate the handshake verified (``x509_pem_cert`` in the call's auth context) and
refuses the call as UNAUTHENTICATED when the CRL lists its serial. A revoked partner still
completes a handshake and can ask the public health service, but no RPC with data.

The CRL must be signed by the client CA (one from elsewhere is refused at start-up, as is one that
does not parse) and is re-read when its file changes, at most once a second, so revoking needs no
restart. A CRL past its ``nextUpdate`` still applies (dropping it would un-revoke everyone) and is
logged as stale.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from madina.auth import RELOAD_CHECK_INTERVAL_S, file_signature

log = logging.getLogger(__name__)


class RevocationList:
    """The serial numbers a CRL file revokes, for client certificates of one CA."""

    def __init__(
        self,
        crl_file: Path,
        client_ca_file: Path,
        *,
        clock: Callable[[], float] = time.monotonic,
        reload_check_interval_s: float = RELOAD_CHECK_INTERVAL_S,
    ) -> None:
        self._file = crl_file
        self._authorities = x509.load_pem_x509_certificates(client_ca_file.read_bytes())
        self._clock = clock
        self._interval_s = reload_check_interval_s
        self._signature = file_signature(crl_file)
        self._revoked = self._read()  # a bad CRL at start-up stops the service: it must not serve unchecked
        self._next_check = clock() + reload_check_interval_s

    def revoked(self, certificate_pem: bytes) -> bool:
        """Whether the client certificate ``certificate_pem`` is on the list."""
        self._reload_if_changed()
        certificate = x509.load_pem_x509_certificate(certificate_pem)
        return (certificate.issuer.public_bytes(), certificate.serial_number) in self._revoked

    def __len__(self) -> int:
        return len(self._revoked)

    def _read(self) -> frozenset[tuple[bytes, int]]:
        raw = self._file.read_bytes()
        try:
            crl = x509.load_pem_x509_crl(raw) if b"-----BEGIN" in raw else x509.load_der_x509_crl(raw)
        except ValueError as error:
            raise ValueError(f"{self._file}: not a certificate revocation list ({error})") from None
        issuer = next((ca for ca in self._authorities if ca.subject == crl.issuer), None)
        if issuer is None or not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
            raise ValueError(f"{self._file}: not signed by the client CA of MADINA_GRPC_TLS_CLIENT_CA_FILE")
        if crl.next_update_utc is not None and crl.next_update_utc < datetime.now(UTC):
            log.warning("certificate revocation list is past its next update; still applied",
                        extra={"file": str(self._file), "next_update": crl.next_update_utc.isoformat()})
        return frozenset((crl.issuer.public_bytes(), entry.serial_number) for entry in crl)

    def _reload_if_changed(self) -> None:
        now = self._clock()
        if now < self._next_check:
            return
        self._next_check = now + self._interval_s
        signature = file_signature(self._file)
        if signature == self._signature:
            return
        try:
            revoked = self._read()
        except (OSError, ValueError) as error:
            log.error("revocation list not reloaded; the previous one stays in force: %s", error)
            return
        self._revoked, self._signature = revoked, signature
        log.info("revocation list reloaded", extra={"file": str(self._file), "revoked": len(revoked)})
