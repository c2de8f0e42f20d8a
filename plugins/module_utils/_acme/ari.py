# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ACME Renewal Information (ARI, RFC 9773): when the CA wants a certificate renewed.

ARI is advice: a CA without ``renewalInfo`` in its directory, a certificate without
an Authority Key Identifier, or a failed look-up all mean "decide as usual".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import typing as t
from dataclasses import dataclass

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.jws import b64u
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import AcmeError
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._time import parse_time

try:
    from cryptography import x509
except ImportError:  # the module reports the missing library (jws.HAS_CRYPTOGRAPHY)
    HAS_CRYPTOGRAPHY = False
else:
    HAS_CRYPTOGRAPHY = True

if t.TYPE_CHECKING:
    # Only a type: the caller passes its transport in, so the filters that read ARI's
    # times never load the HTTP client (docs/architecture.md, "Import contracts").
    from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.transport import Transport


@dataclass(frozen=True)
class RenewalWindow:
    """The CA's suggested window (RFC 9773 section 4.2)."""

    start: dt.datetime
    end: dt.datetime
    explanation_url: str | None = None

    def renewal_time(self, cert_id: str) -> dt.datetime:
        """A point in the window, fixed per certificate so reruns agree, spread across certificates.

        The RFC asks for a random point to spread load; a hash of the certID gives that
        spread while keeping the decision stable from one run to the next.
        """
        fraction = int.from_bytes(hashlib.sha256(cert_id.encode()).digest()[:4], "big") / 2**32
        return self.start + (self.end - self.start) * fraction

    def due(self, cert_id: str, now: dt.datetime) -> bool:
        return now >= self.renewal_time(cert_id)


def _serial_der_bytes(serial: int) -> bytes:
    # The DER INTEGER content octets: two's complement, so a leading 0x00 when the top bit is set.
    return serial.to_bytes(serial.bit_length() // 8 + 1, "big")


def cert_id(cert: x509.Certificate) -> str | None:
    """RFC 9773 section 4.1: base64url(AKI keyIdentifier) "." base64url(serial); None without an AKI."""
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None
    if not aki.key_identifier:
        return None
    return f"{b64u(aki.key_identifier)}.{b64u(_serial_der_bytes(cert.serial_number))}"


def parse_window(data: t.Mapping[str, t.Any]) -> RenewalWindow | None:
    window = data.get("suggestedWindow")
    if not isinstance(window, dict):
        return None
    start, end = parse_time(window.get("start")), parse_time(window.get("end"))
    if start is None or end is None or end < start:
        return None  # section 4.2: a malformed window is ignored
    url = data.get("explanationURL")
    return RenewalWindow(start, end, url if isinstance(url, str) else None)


def fetch_window(transport: Transport, renewal_info_url: str, certificate_id: str) -> RenewalWindow | None:
    """GET ``<renewalInfo>/<certID>``; None on any failure (ARI is advice, never a reason to fail)."""
    url = f"{renewal_info_url.rstrip('/')}/{certificate_id}"
    try:
        return parse_window(transport.get(url).json())
    except AcmeError:
        return None
