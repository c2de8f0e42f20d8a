# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The certificate signing request sent to finalize an order (RFC 8555 section 7.4)."""

from __future__ import annotations

import ipaddress
import typing as t

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.jws import b64u
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.names import is_ip_address

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
except ImportError:  # the module reports the missing library (jws.HAS_CRYPTOGRAPHY)
    HAS_CRYPTOGRAPHY = False
else:
    HAS_CRYPTOGRAPHY = True

if t.TYPE_CHECKING:
    from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.jws import SigningKey

MAX_CN_LENGTH = 64  # RFC 5280 ub-common-name


def _hash_for(key: SigningKey) -> hashes.SHA256 | hashes.SHA384:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384()
    return hashes.SHA256()


def _san(name: str) -> x509.GeneralName:
    """An iPAddress SAN for an address (RFC 8738 section 3), a dNSName for a DNS name."""
    return x509.IPAddress(ipaddress.ip_address(name)) if is_ip_address(name) else x509.DNSName(name)


def build_csr(key: SigningKey, domains: t.Sequence[str]) -> bytes:
    """DER CSR for normalised names: each one a SAN, in the order given.

    The CN is the first DNS name when it fits, else there is none: an address never
    goes into the CN (Let's Encrypt refuses such a CSR, and leaves the CN out of
    certificates for addresses), and RFC 8555 section 7.4 reads the names from the
    SANs anyway. A CSR for addresses only has an empty subject.
    """
    dns = [d for d in domains if not is_ip_address(d)]
    subject = []
    if dns and len(dns[0]) <= MAX_CN_LENGTH:
        subject.append(x509.NameAttribute(NameOID.COMMON_NAME, dns[0]))
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name(subject))
        .add_extension(x509.SubjectAlternativeName([_san(d) for d in domains]), critical=False)
    )
    return builder.sign(key, _hash_for(key)).public_bytes(serialization.Encoding.DER)


def csr_b64(key: SigningKey, domains: t.Sequence[str]) -> str:
    """The ``csr`` field of the finalize request: base64url DER."""
    return b64u(build_csr(key, domains))
