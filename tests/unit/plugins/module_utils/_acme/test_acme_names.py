# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Domain and certificate names: what HTTP-01 can validate, normalised."""

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


@pytest.mark.parametrize(("given", "why"), [
    ("", "empty"),
    (" ", "whitespace"),
    ("exa mple.com", "whitespace"),
    ("example.com\n", "whitespace"),
    ("ex\x00ample.com", "control"),
    ("*.example.com", "wildcard"),
    ("192.0.2.1", "IP address"),
    ("2001:db8::1", "IP address"),
    ("[2001:db8::1]", "IP address"),
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
    assert info.value.msg.startswith("certificate 'web': invalid domain")
    assert info.value.context["certificate"] == "web"


def test_normalize_domains_dedupes_and_keeps_order() -> None:
    assert names.normalize_domains(["B.example", "a.example", "b.example."]) == ["b.example", "a.example"]


def test_normalize_domains_needs_one() -> None:
    with pytest.raises(ConfigError, match="certificate 'x': no domains"):
        names.normalize_domains([], "x")


@pytest.mark.parametrize(("name", "ok"), [
    ("example.com", True), ("shop_2", True), ("a@b+c=d", True),
    ("../etc/passwd", False), ("a/b", False), (".hidden", False), ("with space", False),
    ("line\nbreak", False), ("", False), ("site.pem", False), (None, False),
])
def test_cert_names(name: object, ok: bool) -> None:
    if ok:
        assert names.check_cert_name(name) == name
    else:
        with pytest.raises(ConfigError, match="certificate name"):
            names.check_cert_name(name)
