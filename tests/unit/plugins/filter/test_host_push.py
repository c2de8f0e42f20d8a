# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""host_push: a standalone host's push list, one expression for any number of certificates."""

from __future__ import annotations

import typing as t

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.tlsops.haproxy_acme.plugins.filter.host_push import host_push

TABLE: list[t.Any] = [
    pytest.param([], "/etc/haproxy/certs", [], id="none"),
    pytest.param([{"name": "a", "domains": ["a.example", "www.a.example"]}], "/etc/haproxy/certs/",
                 [{"path": "/etc/haproxy/certs/a.pem", "pem_src": "/etc/haproxy/certs/a.pem",
                   "expected_domains": ["a.example", "www.a.example"]}], id="one-trailing-slash"),
    pytest.param([{"name": "b"}, {"name": "a", "domains": ["a.example"], "profile": "tlsserver"}], "/c",
                 [{"path": "/c/b.pem", "pem_src": "/c/b.pem", "expected_domains": []},
                  {"path": "/c/a.pem", "pem_src": "/c/a.pem", "expected_domains": ["a.example"]}],
                 id="order-kept"),
]


@pytest.mark.parametrize(("certificates", "cert_dir", "expected"), TABLE)
def test_host_push(certificates: list[dict[str, t.Any]], cert_dir: str, expected: list[dict[str, t.Any]]) -> None:
    assert host_push(certificates, cert_dir) == expected


@pytest.mark.parametrize(("certificates", "cert_dir", "message"), [
    pytest.param("a", "/c", "must be a list", id="not-a-list"),
    pytest.param([{"domains": ["a.example"]}], "/c", "needs a name", id="no-name"),
    pytest.param([{"name": "a", "domains": "a.example"}], "/c", "must be a list", id="domains-a-string"),
    pytest.param([{"name": "a"}], "", "cert_dir", id="no-cert-dir"),
])
def test_bad_input_is_a_clear_error(certificates: t.Any, cert_dir: str, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message):
        host_push(certificates, cert_dir)


def test_ten_thousand_in_one_call() -> None:
    certificates = [{"name": f"c{i:05d}", "domains": [f"c{i:05d}.example"]} for i in range(10000)]
    result = host_push(certificates, "/etc/haproxy/certs")
    assert len(result) == 10000 and result[-1]["path"] == "/etc/haproxy/certs/c09999.pem"
