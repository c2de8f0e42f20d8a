# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Build HAProxy PEM bundles (leaf, intermediate, key) for tests."""

from __future__ import annotations

import datetime as dt
import typing as t

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
_ISSUER_KEY = ec.generate_private_key(ec.SECP256R1())
_ISSUER_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Intermediate")])


def new_key(key_type: str) -> t.Any:
    if key_type == "ec256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    return rsa.generate_private_key(65537, int(key_type[3:]))


def _intermediate() -> x509.Certificate:
    return (
        x509.CertificateBuilder().subject_name(_ISSUER_NAME).issuer_name(_ISSUER_NAME)
        .public_key(_ISSUER_KEY.public_key()).serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=3000)).not_valid_after(NOW + dt.timedelta(days=3000))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(_ISSUER_KEY, hashes.SHA256())
    )


INTERMEDIATE = _intermediate()


def make_bundle(
    domains: t.Sequence[str] = ("a.example",),
    key_type: str = "ec256",
    days_left: float = 60,
    lifetime: float = 90,
    serial: int = 0x87654321,
    aki: bytes | None = b"\x01" * 20,
    wrong_key: bool = False,
    with_key: bool = True,
    now: dt.datetime = NOW,
) -> bytes:
    key = new_key(key_type)
    not_after = now + dt.timedelta(days=days_left)
    builder = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domains[0])]))
        .issuer_name(_ISSUER_NAME).public_key(key.public_key()).serial_number(serial)
        .not_valid_before(not_after - dt.timedelta(days=lifetime)).not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in domains]), critical=False)
    )
    if aki is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier(key_identifier=aki, authority_cert_issuer=None, authority_cert_serial_number=None),
            critical=False,
        )
    leaf = builder.sign(_ISSUER_KEY, hashes.SHA256())
    out = leaf.public_bytes(serialization.Encoding.PEM) + INTERMEDIATE.public_bytes(serialization.Encoding.PEM)
    if with_key:
        out += (new_key(key_type) if wrong_key else key).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    return out
