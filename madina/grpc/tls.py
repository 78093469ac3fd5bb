"""TLS material for gRPC servers: from files named by settings, or a self-signed pair for local runs."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from madina.privatefiles import private_directory, write_private


def ensure_self_signed(directory: Path, common_name: str = "localhost") -> tuple[Path, Path]:
    """Create (once) a self-signed certificate for localhost in ``directory``; return (cert, key) paths.

    For `madina up` on one machine only: deployments mount real certificates and set
    MADINA_GRPC_TLS_CERT_FILE / MADINA_GRPC_TLS_KEY_FILE.
    """
    cert_path, key_path = directory / "grpc-cert.pem", directory / "grpc-key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    private_directory(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    write_private(cert_path, certificate.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path
