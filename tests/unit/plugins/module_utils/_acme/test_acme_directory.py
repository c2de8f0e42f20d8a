# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Directory aliases, URLs and the directory object."""

from __future__ import annotations

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import directory as d
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import AcmeError, ConfigError


@pytest.mark.parametrize(("alias", "url"), [
    ("letsencrypt", "https://acme-v02.api.letsencrypt.org/directory"),
    ("letsencrypt_test", "https://acme-staging-v02.api.letsencrypt.org/directory"),
    ("zerossl", "https://acme.zerossl.com/v2/DV90"),
    ("buypass", "https://api.buypass.com/acme/directory"),
    ("buypass_test", "https://api.test4.buypass.no/acme/directory"),
    ("google", "https://dv.acme-v02.api.pki.goog/directory"),
    ("google_test", "https://dv.acme-v02.test-api.pki.goog/directory"),
    (None, "https://acme-staging-v02.api.letsencrypt.org/directory"),
    ("https://127.0.0.1:14000/dir", "https://127.0.0.1:14000/dir"),
    (" https://ca.example/dir ", "https://ca.example/dir"),
])
def test_resolve(alias: str | None, url: str) -> None:
    assert d.resolve_directory(alias) == url


@pytest.mark.parametrize("bad", ["letsencrypt-staging", "LetsEncrypt", "ftp://x", "https://", "https://a b"])
def test_unknown_alias(bad: str) -> None:
    with pytest.raises(ConfigError, match="unknown ACME directory") as info:
        d.resolve_directory(bad)
    assert "letsencrypt_test" in info.value.msg


@pytest.mark.parametrize("url", ["http://127.0.0.1:14000/dir", "HTTP://ca.example/dir", " http://ca.example/dir"])
def test_plain_http_is_refused(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        d.resolve_directory(url)
    assert info.value.msg == (f"ACME directory {url.strip()!r} is plain http://: RFC 8555 section 6.1 requires HTTPS; "
                              "give the CA's https:// directory URL")


@pytest.mark.parametrize("bad", ["https:///dir", "https://[::1/dir", "https://ca.example/a\tb"])
def test_https_url_without_a_host_or_with_whitespace(bad: str) -> None:
    with pytest.raises(ConfigError, match="unknown ACME directory"):
        d.resolve_directory(bad)


@pytest.mark.parametrize("bad", [42, ["letsencrypt"], {"url": "https://x"}])
def test_directory_that_is_no_string(bad: object) -> None:
    with pytest.raises(ConfigError, match="the ACME directory must be an alias or an https:// URL, not "):
        d.resolve_directory(bad)


def test_directory_object() -> None:
    data = {"newNonce": "n", "newAccount": "a", "newOrder": "o", "renewalInfo": "r",
            "meta": {"termsOfService": "tos", "externalAccountRequired": True}}
    directory = d.Directory("u", data)
    assert directory["newOrder"] == "o"
    assert directory.renewal_info == "r" and directory.terms_of_service == "tos" and directory.eab_required
    with pytest.raises(AcmeError, match="no 'keyChange'"):
        directory["keyChange"]


def test_directory_without_ari_or_meta() -> None:
    directory = d.Directory("u", {"newNonce": "n", "newAccount": "a", "newOrder": "o"})
    assert directory.renewal_info is None and directory.terms_of_service is None and not directory.eab_required


def test_not_a_directory() -> None:
    with pytest.raises(AcmeError, match="is not an ACME directory: it lacks newAccount, newOrder"):
        d.Directory("https://example.com/", {"newNonce": "n"})
