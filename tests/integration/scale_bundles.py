# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Many throw-away bundles, fast, and kept for the day: for the scale test, bench/deploy and bench/scale.

One local CA (root + intermediate, EC P-256) per day; each generation of bundles
shares one leaf key, so a bundle costs one signature. Generation ``g`` starts
``g`` minutes after the day's base time, so generation 1 is newer than
generation 0 for the same names (the deploy keeps the newer of two) whenever
either was made. ``age_days`` moves a generation that many days back, so its
bundles are due for renewal (bench/host: 65 days of a 90-day lifetime leaves less than
the third the lifetime rule renews at). Kept in CACHE, one file per day, names,
generation and age; an older day's files are removed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import typing as t
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CACHE = Path(os.environ.get("TLSOPS_BUNDLE_CACHE", "/var/cache/tlsops-haproxy-acme/scale-bundles"))
DAYS = 90
_SEP = b"\0"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tlsops scale"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _ca(subject: x509.Name, issuer: x509.Name, key: t.Any, signer: t.Any, start: dt.datetime) -> x509.Certificate:
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=3 * DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True).sign(signer, hashes.SHA256()))


def base_time(now: dt.datetime | None = None) -> dt.datetime:
    """Yesterday, 00:00 UTC: every bundle of the day is valid from then."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return dt.datetime(now.year, now.month, now.day, tzinfo=dt.timezone.utc) - dt.timedelta(days=1)


class Authority:
    """The day's CA: the root is what a client trusts, the intermediate signs."""

    def __init__(self, base: dt.datetime, cache: Path) -> None:
        path = cache / f"ca-{base:%Y%m%d}.pem"
        if path.exists():
            blocks = path.read_bytes().split(_SEP)
            self.root, self.cert = (x509.load_pem_x509_certificate(b) for b in blocks[:2])
            key = serialization.load_pem_private_key(blocks[2], None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            self.key = key
            return
        root_key, self.key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        self.root = _ca(_name("Scale Root"), _name("Scale Root"), root_key, root_key, base)
        self.cert = _ca(_name("Scale Intermediate"), _name("Scale Root"), self.key, root_key, base)
        _store(path, [_pem(self.root), _pem(self.cert), _key_pem(self.key)])

    def sign(self, domain: str, key: ec.EllipticCurvePrivateKey, start: dt.datetime) -> bytes:
        cert = (x509.CertificateBuilder().subject_name(_name(domain)).issuer_name(self.cert.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(start + dt.timedelta(days=DAYS))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), False)
                .sign(self.key, hashes.SHA256()))
        return _pem(cert)


def _store(path: Path, blocks: list[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.{os.getpid()}")
    part.write_bytes(_SEP.join(blocks))
    os.replace(part, path)


def authority(cache: Path = CACHE) -> Authority:
    return Authority(base_time(), cache)


def bundles(domains: t.Sequence[str], generation: int = 0, cache: Path = CACHE, *,
            age_days: int = 0) -> list[bytes]:
    """One bundle (leaf, intermediate, key) per domain, the domain its only name.

    ``age_days``: valid from that many days before the day's base time (the leaf's
    dates only; the CA's stay as they are, which nothing here checks).
    """
    base = base_time()
    digest = hashlib.sha256("\n".join(domains).encode()).hexdigest()[:16]
    aged = f"-a{age_days}" if age_days else ""  # age 0 keeps the names existing caches have
    path = cache / f"bundles-{base:%Y%m%d}-{digest}-{len(domains)}-g{generation}{aged}.pem"
    if path.exists():
        return path.read_bytes().split(_SEP)
    for old in cache.glob("*.pem"):
        if f"-{base:%Y%m%d}" not in old.name:
            old.unlink(missing_ok=True)
    ca = authority(cache)
    key = ec.generate_private_key(ec.SECP256R1())
    tail = _pem(ca.cert) + _key_pem(key)
    start = base - dt.timedelta(days=age_days) + dt.timedelta(minutes=generation)
    made = [ca.sign(domain, key, start) + tail for domain in domains]
    _store(path, made)
    return made
