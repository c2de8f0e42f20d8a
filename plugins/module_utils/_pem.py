# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PEM bundles as HAProxy loads them: leaf, chain, key in one file.

Parsing, key generation, key/certificate matching, SANs and expiry, and the checks
a bundle passes before HAProxy is given it. Writing files is _files.py's, times are
_time.py's.

Works with cryptography 38 (Debian 12) and newer.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import traceback
import typing as t
from dataclasses import dataclass, field

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _defaults
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import ConfigError, PemError
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._time import as_utc, isoformat, utcnow

# Modules check HAS_CRYPTOGRAPHY and fail with Ansible's missing_required_lib message
# (CRYPTOGRAPHY_IMPORT_ERROR as its traceback). The file itself imports without it
# (Ansible's import sanity test loads it so; haproxy_runtime_cert_info needs only its
# file helpers); what parses or makes keys and certificates raises PemError then,
# never a NameError.
try:
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtensionOID
except ImportError:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None


def require_cryptography() -> None:
    """PemError unless the cryptography library could be imported."""
    if not HAS_CRYPTOGRAPHY:
        raise PemError(
            "the Python library cryptography is not installed for this Python (python3-cryptography on"
            " Debian and Ubuntu): it is needed to read keys and certificates"
        )


if t.TYPE_CHECKING:
    PrivateKey = t.Union[ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey]
    PublicKey = t.Union[ec.EllipticCurvePublicKey, rsa.RSAPublicKey]

KEY_TYPES = _defaults.KEY_TYPES
_CURVE_BITS = {"ec256": 256, "ec384": 384}
_CURVE_NAMES = {"secp256r1": "ec256", "secp384r1": "ec384"}

_CERT_RE = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL)
_KEY_RE = re.compile(
    rb"-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----\r?\n.+?\r?\n-----END (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----",
    re.DOTALL,
)


# ------------------------------------------------------------------ keys


def generate_private_key(key_type: str) -> PrivateKey:
    """A new key of one of KEY_TYPES."""
    require_cryptography()
    if key_type in _CURVE_BITS:
        curve = ec.SECP256R1() if key_type == "ec256" else ec.SECP384R1()
        return ec.generate_private_key(curve)
    if key_type.startswith("rsa") and key_type in KEY_TYPES:
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[3:]))
    raise ConfigError(f"unknown key type {key_type!r}; choose one of {', '.join(KEY_TYPES)}", key_type=key_type)


def load_private_key(data: bytes, what: str = "private key") -> PrivateKey:
    """Parse an unencrypted PEM key (PKCS#8, SEC1 as acme.sh writes, or PKCS#1).

    The message never quotes the input: it may be key material.
    """
    require_cryptography()
    match = _KEY_RE.search(data)
    if match is None:
        raise PemError(f"{what}: no PEM private key found")
    try:
        key = serialization.load_pem_private_key(match.group(0), password=None)
    except UnsupportedAlgorithm as exc:  # a PKCS#8 key of an algorithm or curve cryptography does not know
        raise PemError(f"{what}: unusable private key (its algorithm or curve is not supported)") from exc
    except (ValueError, TypeError) as exc:
        reason = "it is encrypted" if b"ENCRYPTED" in match.group(0) else "it cannot be parsed"
        raise PemError(f"{what}: unusable private key ({reason})") from exc
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise PemError(f"{what}: only EC (P-256, P-384) and RSA keys are supported")
    key_type_of(key)  # rejects curves and sizes we do not support
    return key


def private_key_to_pem(key: PrivateKey) -> bytes:
    """PKCS#8, unencrypted: what HAProxy and every ACME client read."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def key_type_of(key: PrivateKey | PublicKey) -> str:
    """``ec256``, ``ec384`` or ``rsa<bits>``; PemError for anything else."""
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        name = _CURVE_NAMES.get(key.curve.name)
        if name is None:
            raise PemError(f"unsupported elliptic curve {key.curve.name}")
        return name
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        if key.key_size < 2048:
            raise PemError(f"RSA key of {key.key_size} bits is too small (2048 at least)")
        return f"rsa{key.key_size}"
    raise PemError("unsupported key algorithm")


def _public_der(key: PrivateKey | PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)) else key
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_matches_certificate(key: PrivateKey, cert: x509.Certificate) -> bool:
    """Whether the private key belongs to the certificate's public key."""
    try:
        public = t.cast("PublicKey", cert.public_key())
    except (ValueError, UnsupportedAlgorithm):  # a key no EC or RSA private key can match
        return False
    return _public_der(key) == _public_der(public)


# ---------------------------------------------------------- certificates


# What cryptography raises for a malformed part it parses late (a name, an extension): ValueError,
# and with Debian 12's cryptography 38 a KeyError for a string type it does not know.
_UNREADABLE = (ValueError, KeyError, TypeError)


def _why(exc: Exception) -> str:
    if isinstance(exc, ValueError) and str(exc):
        return str(exc)
    return f"a malformed name or extension ({type(exc).__name__} {exc})"


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Every CERTIFICATE block of ``data``, in order."""
    return _load_certificates(data)[0]


def _load_certificates(data: bytes) -> tuple[list[x509.Certificate], CertInfo]:
    """Every CERTIFICATE block of ``data``, in order, and the first one's facts."""
    require_cryptography()
    blocks = _CERT_RE.findall(data)
    if not blocks:
        raise PemError("no PEM certificate found")
    certs = []
    leaf: CertInfo | None = None
    for index, block in enumerate(blocks):
        cert = _CHAIN_SEEN.get(block)
        if cert is None:
            try:
                cert = x509.load_pem_x509_certificate(block)
                # cryptography parses names and extensions on first use: a bad one fails here, not
                # later; the leaf's facts are kept (computing them is most of a bundle's parse).
                facts = _facts(cert)
            except _UNREADABLE as exc:
                raise PemError(f"certificate #{index + 1} of the bundle cannot be parsed: {_why(exc)}") from exc
            if index == 0:
                leaf = facts
            elif len(_CHAIN_SEEN) < _CHAIN_SEEN_MAX:
                _CHAIN_SEEN[block] = cert
        certs.append(cert)
    return certs, t.cast(CertInfo, leaf)  # leaves are never in _CHAIN_SEEN: index 0 was parsed here


# Chain certificates already parsed and checked, by their PEM block: the thousands of bundles
# of one run mostly repeat one or two intermediates. Leaves are never kept.
_CHAIN_SEEN: dict[bytes, t.Any] = {}
_CHAIN_SEEN_MAX = 64


def serial_hex(serial: int) -> str:
    """HAProxy's ``Serial:`` form: upper-case hex of the integer's bytes (even length)."""
    text = format(serial, "X")
    return text if len(text) % 2 == 0 else "0" + text


def _normal_serial(value: str) -> str:
    return value.replace(":", "").strip().upper().lstrip("0")


def same_serial(a: str, b: str) -> bool:
    """Compare serials written with or without colons, case or leading zeros."""
    return _normal_serial(a) == _normal_serial(b)


def _not_before(cert: x509.Certificate) -> dt.datetime:
    # not_valid_before_utc arrived in cryptography 42; Debian 12 ships 38.
    value = getattr(cert, "not_valid_before_utc", None)
    return as_utc(value if value is not None else cert.not_valid_before)


def _not_after(cert: x509.Certificate) -> dt.datetime:
    value = getattr(cert, "not_valid_after_utc", None)
    return as_utc(value if value is not None else cert.not_valid_after)


def parse_ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``name`` writes (an IPv6 one may come in brackets, as in a URL), or None."""
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if ":" not in name and not name[-1:].isdigit():
        return None  # an IPv6 address has a ':', an IPv4 one ends in a digit: spare the exception
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def ip_text(name: str) -> str | None:
    """The normal textual form of an IP address (RFC 5952 section 4 for IPv6, no
    brackets), as names.normalize_domain writes it; None when ``name`` is no address."""
    address = parse_ip(name)
    return None if address is None else str(address)


def san_names(cert: x509.Certificate) -> tuple[str, ...]:
    """The certificate's names, in order: dNSName SANs lower-case, iPAddress SANs in
    their normal textual form (ip_text), so they compare equal to the names asked.

    A dNSName holding an address is left out: RFC 5280 section 4.2.1.6 puts addresses
    in iPAddress, and clients match an address against those only.
    """
    try:
        ext = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    except x509.ExtensionNotFound:
        return ()
    names: list[str] = []
    for general in t.cast(x509.SubjectAlternativeName, ext.value):
        if isinstance(general, x509.DNSName) and ip_text(general.value) is None:
            names.append(general.value.lower())
        elif isinstance(general, x509.IPAddress) and isinstance(general.value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            names.append(str(general.value))
    return tuple(names)


@dataclass(frozen=True)
class CertInfo:
    """The facts about a certificate that decisions and results are made of."""

    serial: str
    not_before: dt.datetime
    not_after: dt.datetime
    domains: tuple[str, ...]
    subject: str
    issuer: str
    sha1_fingerprint: str
    key_type: str

    def days_left(self, now: dt.datetime | None = None) -> float:
        return (self.not_after - (now or utcnow())).total_seconds() / 86400.0

    def to_json(self) -> dict[str, t.Any]:
        """The facts as JSON (dates in Unix seconds), for an index (_index.py); from_json reads them back."""
        return {"serial": self.serial, "not_before": self.not_before.timestamp(), "not_after": self.not_after.timestamp(),
                "domains": list(self.domains), "subject": self.subject, "issuer": self.issuer,
                "sha1_fingerprint": self.sha1_fingerprint, "key_type": self.key_type}

    @classmethod
    def from_json(cls, data: t.Mapping[str, t.Any]) -> CertInfo:
        """KeyError, TypeError or ValueError for data of another shape."""
        return cls(
            serial=str(data["serial"]), subject=str(data["subject"]), issuer=str(data["issuer"]),
            sha1_fingerprint=str(data["sha1_fingerprint"]), key_type=str(data["key_type"]),
            domains=tuple(str(d) for d in data["domains"]),
            not_before=dt.datetime.fromtimestamp(float(data["not_before"]), dt.timezone.utc),
            not_after=dt.datetime.fromtimestamp(float(data["not_after"]), dt.timezone.utc),
        )

    def as_dict(self, now: dt.datetime | None = None) -> dict[str, t.Any]:
        return {
            "serial": self.serial,
            "not_before": isoformat(self.not_before),
            "not_after": isoformat(self.not_after),
            "days_left": round(self.days_left(now), 1),
            "domains": list(self.domains),
            "subject": self.subject,
            "issuer": self.issuer,
            "sha1_fingerprint": self.sha1_fingerprint,
            "key_type": self.key_type,
        }


def cert_info(cert: x509.Certificate) -> CertInfo:
    """The facts of ``cert``; PemError when a part of it cannot be parsed (load_certificates
    has checked that already for every certificate it returns)."""
    try:
        return _facts(cert)
    except _UNREADABLE as exc:
        raise PemError(f"the certificate cannot be parsed: {_why(exc)}") from exc


def _facts(cert: x509.Certificate) -> CertInfo:
    try:
        key_type = key_type_of(t.cast("PublicKey", cert.public_key()))
    except (PemError, ValueError, UnsupportedAlgorithm):
        key_type = "unknown"
    return CertInfo(
        serial=serial_hex(cert.serial_number),
        not_before=_not_before(cert),
        not_after=_not_after(cert),
        domains=san_names(cert),
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        sha1_fingerprint=cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - HAProxy's identifier, not security
        key_type=key_type,
    )


# ---------------------------------------------------------------- bundles


@dataclass
class Bundle:
    """A parsed HAProxy PEM bundle: leaf first, then its chain, then the key."""

    certificates: list[x509.Certificate]
    key: PrivateKey | None = field(default=None, repr=False)
    # The leaf's facts: given by parse_bundle, which computes them while checking the leaf.
    leaf_info: CertInfo | None = field(default=None, repr=False, compare=False)

    @property
    def leaf(self) -> x509.Certificate:
        return self.certificates[0]

    @property
    def chain(self) -> list[x509.Certificate]:
        return self.certificates[1:]

    def info(self) -> CertInfo:
        """The leaf's facts, read once (a deploy asks for them several times per bundle)."""
        if self.leaf_info is None:
            self.leaf_info = cert_info(self.leaf)
        return self.leaf_info


def parse_bundle(data: bytes, require_key: bool = True, load_key: bool = True) -> Bundle:
    """The bundle in ``data``; with ``load_key`` false its certificates only (``key`` None), for
    facts of a bundle whose key was checked already (loading a key is a third of a parse)."""
    certs, leaf = _load_certificates(data)
    key = None
    if not load_key:
        return Bundle(certs, None, leaf)
    if _KEY_RE.search(data):
        key = load_private_key(data, "bundle key")
    elif require_key:
        raise PemError("the bundle holds no private key")
    return Bundle(certs, key, leaf)


def domain_covered(domain: str, sans: t.Iterable[str]) -> bool:
    """Whether a SAN list (san_names) covers ``domain``; a wildcard covers exactly one
    label of a DNS name, and an IP address only the same address."""
    address = ip_text(domain)
    if address is not None:
        return any(ip_text(san) == address for san in sans)
    domain = domain.lower().rstrip(".")
    for raw in sans:
        san = raw.lower().rstrip(".")
        if san == domain:
            return True
        if san.startswith("*.") and "." in domain and domain.split(".", 1)[1] == san[2:]:
            return True
    return False


def structure_problem(bundle: Bundle) -> str | None:
    """What keeps HAProxy from using ``bundle`` whatever the time (no key, a key for another
    certificate, a chain out of order), or None: facts of the file alone, which an index
    may keep (_index.py)."""
    if bundle.key is None:
        return "the bundle holds no private key"
    if not key_matches_certificate(bundle.key, bundle.leaf):
        return "the private key does not match the certificate"
    for index, (cert, issuer) in enumerate(zip(bundle.certificates, bundle.certificates[1:])):
        if cert.issuer != issuer.subject:
            return f"the chain is out of order: certificate #{index + 1} is not issued by certificate #{index + 2}"
    return None


def validity_problem(info: CertInfo, now: dt.datetime) -> str | None:
    """Why the certificate is not valid at ``now``, or None."""
    if now < info.not_before:
        return f"the certificate is not valid before {isoformat(info.not_before)}"
    if now >= info.not_after:
        return f"the certificate expired on {isoformat(info.not_after)}"
    return None


def check_bundle(
    bundle: Bundle,
    expected_domains: t.Iterable[str] | None = None,
    now: dt.datetime | None = None,
) -> None:
    """Refuse a bundle HAProxy must not be given; PemError says why."""
    info = bundle.info()
    problem = structure_problem(bundle)
    if problem:
        raise PemError(problem, serial=info.serial)
    check_facts(info, expected_domains, now)


def check_facts(info: CertInfo, expected_domains: t.Iterable[str] | None = None, now: dt.datetime | None = None) -> None:
    """What check_bundle asks of the leaf alone: valid now, and covering ``expected_domains``."""
    problem = validity_problem(info, now or utcnow())
    if problem:
        raise PemError(problem, serial=info.serial)
    missing = [d for d in (expected_domains or []) if not domain_covered(d, info.domains)]
    if missing:
        raise PemError(
            f"the certificate does not cover {', '.join(missing)}",
            serial=info.serial,
            domains=list(info.domains),
        )


def bundle_pem(certificates_pem: bytes, key: PrivateKey) -> bytes:
    """HAProxy's format: the leaf, its chain, then the key, with plain newlines."""
    blocks = [block.replace(b"\r\n", b"\n") for block in _CERT_RE.findall(certificates_pem)]
    if not blocks:
        raise PemError("no PEM certificate found")
    return b"\n".join(blocks) + b"\n" + private_key_to_pem(key)
