# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbook_problems: the checks of site and renew beyond the argument spec, in one task."""

from __future__ import annotations

import typing as t

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.filter.playbook_problems import playbook_problems

A = {"name": "a.test", "domains": ["a.test"]}
B = {"name": "b.test", "domains": ["b.test"]}
GOOD: dict[str, t.Any] = {"certificates": [A, B], "terms_agreed": True, "topology": "fleet",
                          "account_key_content": "", "account_key_path": "/srv/acme/account.key",
                          "directory": "https://ca.test/dir"}
CERTS, TERMS, KEY = "Set haproxy_acme_certificates", "Set haproxy_acme_terms_agreed", "A fleet keeps the ACME account key"


@pytest.mark.parametrize(("change", "starts"), [
    pytest.param({}, [], id="all good"),
    pytest.param({"topology": "standalone", "account_key_path": ""}, [], id="standalone: the key is the host's"),
    pytest.param({"account_key_path": "", "account_key_content": "-----BEGIN"}, [], id="fleet, key content"),
    pytest.param({"account_key_path": ""}, [KEY], id="fleet without a key"),
    pytest.param({"certificates": []}, [CERTS], id="no certificates"),
    pytest.param({"certificates": [A, A]}, [CERTS], id="a name twice"),
    pytest.param({"certificates": [A, "b.test"]}, [CERTS], id="an entry that is no mapping"),
    pytest.param({"certificates": "a.test"}, [CERTS], id="no list"),
    pytest.param({"terms_agreed": False}, [TERMS], id="terms not agreed"),
    pytest.param({"terms_agreed": "yes"}, [TERMS], id="terms: only true itself (the task passes | bool)"),
    pytest.param({"certificates": [], "terms_agreed": False, "account_key_path": ""}, [CERTS, TERMS, KEY],
                 id="everything, in order"),
])
def test_problems(change: dict[str, t.Any], starts: list[str]) -> None:
    args = {**GOOD, **change}
    problems = playbook_problems(args.pop("certificates"), **args)
    assert [p[:len(s)] for p, s in zip(problems, starts)] == starts and len(problems) == len(starts), problems
    if TERMS in starts:
        assert "(https://ca.test/dir)" in problems[starts.index(TERMS)]
