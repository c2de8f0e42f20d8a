# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The finalize CSR: DNS names as dNSName, IP addresses as iPAddress (RFC 8738), the CN never an address."""

from __future__ import annotations

import base64
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import csr

LONG = "a" * 60 + ".example"  # 68 characters: too long for a CN (RFC 5280 ub-common-name 64)


def _parse(der: bytes) -> tuple[list[str], list[tuple[str, str]]]:
    """(CN values, SANs as (kind, text) in order) of a DER CSR."""
    request = x509.load_der_x509_csr(der)
    assert request.is_signature_valid
    cns = [str(a.value) for a in request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    san = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    sans = [("ip", str(g.value)) if isinstance(g, x509.IPAddress) else ("dns", str(g.value)) for g in san]
    return cns, sans


@pytest.mark.parametrize(("domains", "cn", "sans"), [
    (["example.com", "www.example.com"], ["example.com"],
     [("dns", "example.com"), ("dns", "www.example.com")]),
    (["192.0.2.7"], [], [("ip", "192.0.2.7")]),
    (["2001:db8::1"], [], [("ip", "2001:db8::1")]),
    (["127.0.0.1", "::1"], [], [("ip", "127.0.0.1"), ("ip", "::1")]),
    # the CN is the first DNS name, wherever it stands; the SANs keep the order asked
    (["192.0.2.7", "a.example", "2001:db8::1", "b.example"], ["a.example"],
     [("ip", "192.0.2.7"), ("dns", "a.example"), ("ip", "2001:db8::1"), ("dns", "b.example")]),
    # a first DNS name too long for the CN: no CN at all, as before
    ([LONG, "b.example"], [], [("dns", LONG), ("dns", "b.example")]),
    (["192.0.2.7", LONG], [], [("ip", "192.0.2.7"), ("dns", LONG)]),
])
def test_names_and_common_name(domains: list[str], cn: list[str], sans: list[tuple[str, str]]) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    assert _parse(csr.build_csr(key, domains)) == (cn, sans)


def test_ip_san_is_the_address_in_network_byte_order() -> None:
    request = x509.load_der_x509_csr(csr.build_csr(ec.generate_private_key(ec.SECP256R1()), ["2001:db8::1"]))
    san = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.IPv6Address("2001:db8::1")]
    assert san.get_values_for_type(x509.DNSName) == []
    assert list(request.subject) == []


def test_finalize_field_is_base64url_of_the_der() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    text = csr.csr_b64(key, ["192.0.2.7", "a.example"])
    assert "=" not in text and "+" not in text and "/" not in text
    der = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    assert _parse(der) == (["a.example"], [("ip", "192.0.2.7"), ("dns", "a.example")])
