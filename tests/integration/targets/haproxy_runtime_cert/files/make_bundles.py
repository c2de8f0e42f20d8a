# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Write throw-away HAProxy bundles (leaf, intermediate, key) for the integration targets.

make_bundles.py <dir> [--days N] [--hours-ago H] [--mismatch] name... -> <dir>/<name>.pem, SAN = name.
``--hours-ago`` sets notBefore (1 by default): a bundle meant to replace another for the same
name needs a later one, as haproxy_runtime_cert never replaces a newer certificate.
One private CA per output directory (kept in <dir>/.ca.pem) so chains stay the same between calls.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

PEM = serialization.Encoding.PEM


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def authority(directory: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    path = directory / ".ca.pem"
    if path.exists():
        data = path.read_bytes()
        key = serialization.load_pem_private_key(data, None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key, x509.load_pem_x509_certificate(data)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tlsops test"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Target CA"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now() - dt.timedelta(days=1))
        .not_valid_after(now() + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(key_pem(key) + cert.public_bytes(PEM))
    os.chmod(path, 0o600)
    return key, cert


def leaf(
    ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, name: str, days: float, hours_ago: float = 1
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now() - dt.timedelta(hours=hours_ago))
        .not_valid_after(now() + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory", type=Path)
    parser.add_argument("names", nargs="+")
    parser.add_argument("--days", type=float, default=90)
    parser.add_argument("--hours-ago", type=float, default=1, help="notBefore, in hours before now")
    parser.add_argument("--mismatch", action="store_true", help="pair each leaf with a key of its own")
    args = parser.parse_args()
    args.directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = authority(args.directory)
    for name in args.names:
        cert, key = leaf(ca_key, ca, name, args.days, args.hours_ago)
        if args.mismatch:
            key = ec.generate_private_key(ec.SECP256R1())
        path = args.directory / f"{name}.pem"
        path.write_bytes(cert.public_bytes(PEM) + ca.public_bytes(PEM) + key_pem(key))
        os.chmod(path, 0o600)


if __name__ == "__main__":
    main()
