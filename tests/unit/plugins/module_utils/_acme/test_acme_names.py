# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Domain names, IP addresses and certificate names: what HTTP-01 can validate, normalised."""

from __future__ import annotations

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import names
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import ConfigError


@pytest.mark.parametrize(("given", "expected"), [
    ("example.com", "example.com"),
    ("WWW.Example.COM", "www.example.com"),
    ("example.com.", "example.com"),
    ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ("a-b.c-d.example", "a-b.c-d.example"),
    ("1.example", "1.example"),
    ("a" * 63 + ".example", "a" * 63 + ".example"),
    (".".join(["a" * 61] * 4), ".".join(["a" * 61] * 4)),  # 247 characters
])
def test_valid_names(given: str, expected: str) -> None:
    assert names.normalize_domain(given) == expected


@pytest.mark.parametrize(("given", "expected"), [
    # IPv4: RFC 1123 section 2.1 dotted decimal
    ("192.0.2.1", "192.0.2.1"),
    ("127.0.0.1", "127.0.0.1"),
    ("192.0.2.1.", "192.0.2.1"),  # one trailing dot goes, as for a DNS name
    ("10.0.0.1", "10.0.0.1"),  # private addresses are the CA's business, not ours
    # IPv6: RFC 5952 section 4 - lower case, no leading zeros, the longest zero run as ::
    ("2001:db8::1", "2001:db8::1"),
    ("2001:DB8::1", "2001:db8::1"),
    ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
    ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),  # the first of two equal runs
    ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),  # one zero group is never ::
    ("::1", "::1"),
    ("fe80::1", "fe80::1"),
    # brackets, as in a URL, are dropped
    ("[2001:db8::1]", "2001:db8::1"),
    ("[::1]", "::1"),
])
def test_ip_addresses(given: str, expected: str) -> None:
    assert names.normalize_domain(given) == expected
    assert names.identifier(expected) == {"type": "ip", "value": expected}


@pytest.mark.parametrize(("given", "why"), [
    ("fe80::1%eth0", "zone-scoped"),
    ("[fe80::1%eth0]", "zone-scoped"),
    ("fe80::1%25eth0", "zone-scoped"),
    ("192.0.2.1%eth0", "zone-scoped"),
    ("::ffff:192.0.2.1", "IPv4-mapped IPv6 address: give the IPv4 address 192.0.2.1"),
    ("0.0.0.0", "unspecified or multicast"),
    ("::", "unspecified or multicast"),
    ("224.0.0.1", "unspecified or multicast"),
    ("ff02::1", "unspecified or multicast"),
    ("192.0.2.256", "not a valid IP address"),
    ("192.0.2", "not a valid IP address"),
    ("01.2.3.4", "not a valid IP address"),  # leading zeros: octal to some parsers
    ("*.192.0.2.1", "wildcard"),
    ("2001:db8::1/128", "not a valid IP address"),
    ("[2001:db8::1", "not a valid IP address"),
    ("2001:db8::g", "not a valid IP address"),
    ("example.com:443", "not a valid IP address"),
])
def test_invalid_addresses(given: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        names.normalize_domain(given, cert_name="ip")


@pytest.mark.parametrize(("name", "kind"), [
    ("example.com", "dns"), ("1.example", "dns"), ("192.0.2.1", "ip"), ("2001:db8::1", "ip"), ("::1", "ip"),
])
def test_identifier(name: str, kind: str) -> None:
    assert names.identifier(name) == {"type": kind, "value": name}
    assert names.is_ip_address(name) is (kind == "ip")


@pytest.mark.parametrize(("given", "why"), [
    ("", "empty"),
    (" ", "whitespace"),
    ("exa mple.com", "whitespace"),
    ("example.com\n", "whitespace"),
    ("ex\x00ample.com", "control"),
    ("*.example.com", "wildcard"),
    ("a" * 64 + ".example", "longer than 63"),
    (".".join(["a" * 63] * 4) + ".com", "longer than 253"),
    ("-bad.example", "inner hyphens"),
    ("bad-.example", "inner hyphens"),
    ("under_score.example", "inner hyphens"),
    ("double..dot.example", "empty label"),
    ("example.com..", "empty label"),
    ("localhost", "two labels"),
    ("bücher.example", "punycode"),
    (42, "not a string"),
])
def test_invalid_names(given: object, why: str) -> None:
    with pytest.raises(ConfigError, match=why) as info:
        names.normalize_domain(given, cert_name="web")
    assert info.value.msg.startswith("invalid domain ")  # the issuer adds the certificate's name, once
    assert info.value.context["certificate"] == "web"


def test_normalize_domains_dedupes_and_keeps_order() -> None:
    assert names.normalize_domains(["B.example", "a.example", "b.example."]) == ["b.example", "a.example"]
    assert names.normalize_domains(["2001:DB8::1", "a.example", "[2001:db8:0::1]", "192.0.2.1"]) == [
        "2001:db8::1", "a.example", "192.0.2.1"]


def test_normalize_domains_needs_one() -> None:
    with pytest.raises(ConfigError, match=r"^no domains given$"):
        names.normalize_domains([], "x")


@pytest.mark.parametrize(("name", "ok"), [
    ("example.com", True), ("shop_2", True), ("a@b+c=d", True),
    ("../etc/passwd", False), ("a/b", False), (".hidden", False), ("with space", False),
    ("line\nbreak", False), ("trailing\n", False), ("", False), ("site.pem", False), (None, False),
])
def test_cert_names(name: object, ok: bool) -> None:
    if ok:
        assert names.check_cert_name(name) == name
    else:
        with pytest.raises(ConfigError, match="certificate name"):
            names.check_cert_name(name)
