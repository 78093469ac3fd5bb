"""The partners' certificate revocation list (madina.grpc.revocation)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from madina.grpc.revocation import RevocationList
from tests.support.certificates import TestAuthority


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def authority() -> TestAuthority:
    return TestAuthority()


def _files(tmp_path: Path, authority: TestAuthority, crl: bytes) -> tuple[Path, Path]:
    crl_file = tmp_path / "partners.crl"
    crl_file.write_bytes(crl)
    return crl_file, authority.write(tmp_path / "ca.pem")


def test_a_listed_certificate_is_revoked_and_others_are_not(tmp_path: Path, authority: TestAuthority) -> None:
    gone, kept = authority.issue_client("gone"), authority.issue_client("kept")
    revocations = RevocationList(*_files(tmp_path, authority, authority.revocation_list([gone])))
    assert revocations.revoked(gone.certificate)
    assert not revocations.revoked(kept.certificate)


def test_a_der_crl_is_read_too(tmp_path: Path, authority: TestAuthority) -> None:
    gone = authority.issue_client("gone")
    der = x509.load_pem_x509_crl(authority.revocation_list([gone])).public_bytes(serialization.Encoding.DER)
    assert RevocationList(*_files(tmp_path, authority, der)).revoked(gone.certificate)


def test_a_crl_of_another_authority_or_no_crl_at_all_stops_start_up(tmp_path: Path, authority: TestAuthority) -> None:
    stranger = TestAuthority("someone else")
    with pytest.raises(ValueError, match="not signed by the client CA"):
        RevocationList(*_files(tmp_path, authority, stranger.revocation_list([])))
    with pytest.raises(ValueError, match="not a certificate revocation list"):
        RevocationList(*_files(tmp_path, authority, b"not a CRL"))


def test_a_changed_crl_is_read_again_and_a_broken_one_keeps_the_last(tmp_path: Path, authority: TestAuthority) -> None:
    gone = authority.issue_client("gone")
    crl_file, ca_file = _files(tmp_path, authority, authority.revocation_list([]))
    clock = Clock()
    revocations = RevocationList(crl_file, ca_file, clock=clock, reload_check_interval_s=1.0)
    assert not revocations.revoked(gone.certificate)

    crl_file.write_bytes(authority.revocation_list([gone]))
    assert not revocations.revoked(gone.certificate)  # not looked at again before the interval
    clock.now += 1.0
    assert revocations.revoked(gone.certificate)

    crl_file.write_bytes(b"truncated")
    clock.now += 1.0
    assert revocations.revoked(gone.certificate)
