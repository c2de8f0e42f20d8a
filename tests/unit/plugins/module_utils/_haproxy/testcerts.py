# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Throw-away certificates for the HAProxy tests: a private CA (root + intermediate) and leaves.

No ACME needed: HAProxy serves whatever bundle it is given.
"""

from __future__ import annotations

import datetime as dt
import functools
import typing as t
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

Key = t.Union[ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey]


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "XX")] if org else []
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


_last_start: list[dt.datetime] = []


def _next_start() -> dt.datetime:
    """notBefore of the next leaf: an hour ago, and at least a second after the leaf before.

    A bundle made later is then the newer one, as with a CA: the deploy keeps a newer
    certificate for the same names and would refuse one made in the same second with a
    lower serial.
    """
    start = (_now() - dt.timedelta(hours=1)).replace(microsecond=0)
    if _last_start:
        start = min(max(start, _last_start[0] + dt.timedelta(seconds=1)), _now() - dt.timedelta(seconds=1))
    _last_start[:] = [start]
    return start


@dataclass
class Authority:
    """A CA that signs leaves; ``chain`` is what a bundle carries after the leaf."""

    name: x509.Name
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    root: x509.Certificate | None = None

    @property
    def chain(self) -> list[x509.Certificate]:
        return [self.cert]

    def issue(
        self,
        domains: t.Sequence[str],
        days: float = 90,
        key: Key | None = None,
        not_before: dt.datetime | None = None,
    ) -> tuple[x509.Certificate, Key]:
        key = key or ec.generate_private_key(ec.SECP256R1())
        start = not_before or _next_start()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(domains[0]) if domains else _name("no-san"))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=days))
        )
        if domains:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in domains]), False)
        return builder.sign(self.key, hashes.SHA256()), key

    def bundle(self, domains: t.Sequence[str], days: float = 90, key: Key | None = None) -> bytes:
        """HAProxy's format: leaf, chain, key."""
        cert, key = self.issue(domains, days, key)
        return _pem(cert) + b"".join(_pem(c) for c in self.chain) + _key_pem(key)


def _self_signed(cn: str, org: str) -> tuple[x509.Name, ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(cn, org)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(days=1))
        .not_valid_after(_now() + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    return name, key, cert


@functools.lru_cache(maxsize=None)
def authority(label: str = "Test") -> Authority:
    """A root and an intermediate (``/C=XX/O=tlsops test/CN=<label> Intermediate``), cached per label."""
    root_name, root_key, root = _self_signed(f"{label} Root", "tlsops test")
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(f"{label} Intermediate", "tlsops test")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(root_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(days=1))
        .not_valid_after(_now() + dt.timedelta(days=3000))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        .sign(root_key, hashes.SHA256())
    )
    return Authority(name, key, cert, root)


def bundle(domains: t.Sequence[str], days: float = 90, label: str = "Test") -> bytes:
    return authority(label).bundle(domains, days)


def mismatched_bundle(domains: t.Sequence[str]) -> bytes:
    """A leaf with somebody else's key."""
    cert, _ = authority().issue(domains)
    other = ec.generate_private_key(ec.SECP256R1())
    return _pem(cert) + _pem(authority().cert) + _key_pem(other)


def expired_bundle(domains: t.Sequence[str]) -> bytes:
    cert, key = authority().issue(domains, days=1, not_before=_now() - dt.timedelta(days=10))
    return _pem(cert) + _pem(authority().cert) + _key_pem(key)


def serial_of(pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(pem)
    text = format(cert.serial_number, "X")
    return text if len(text) % 2 == 0 else "0" + text
