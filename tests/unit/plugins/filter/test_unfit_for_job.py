# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""unfit_for_job: the entries the host renewal job cannot take, in one pass."""

from __future__ import annotations

import typing as t

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.tlsops.haproxy_acme.plugins.filter.unfit_for_job import unfit_for_job

GOOD = {"name": "a.example", "domains": ["a.example", "www.a.example"]}

TABLE: list[t.Any] = [
    # entry, default key type, unfit?
    pytest.param(GOOD, "ec256", False, id="fit"),
    pytest.param({**GOOD, "key_type": "rsa4096", "profile": "tlsserver"}, "ec256", False, id="key-type-and-profile"),
    pytest.param({**GOOD, "profile": ""}, "ec256", False, id="empty-profile-is-none"),
    pytest.param({**GOOD, "domains": ("a.example",)}, "ec256", False, id="domains-a-tuple"),
    pytest.param({"domains": ["a.example"]}, "ec256", True, id="no-name"),
    pytest.param({**GOOD, "name": "a/b"}, "ec256", True, id="slash-in-name"),
    pytest.param({**GOOD, "name": ".hidden"}, "ec256", True, id="leading-dot"),
    pytest.param({**GOOD, "name": "a\n"}, "ec256", True, id="newline-in-name"),
    pytest.param({"name": "a"}, "ec256", True, id="no-domains"),
    pytest.param({**GOOD, "domains": "a.example"}, "ec256", True, id="domains-a-string"),
    pytest.param({**GOOD, "domains": []}, "ec256", True, id="domains-empty"),
    pytest.param({**GOOD, "key_type": "ec521"}, "ec256", True, id="unknown-key-type"),
    pytest.param(GOOD, "dsa", True, id="unknown-default-key-type"),
    pytest.param({**GOOD, "profile": "six day"}, "ec256", True, id="bad-profile"),
    pytest.param({**GOOD, "profile": "p" * 65}, "ec256", True, id="profile-too-long"),
    pytest.param("a.example", "ec256", True, id="not-a-mapping"),
]


@pytest.mark.parametrize(("entry", "default_key_type", "unfit"), TABLE)
def test_unfit_for_job(entry: t.Any, default_key_type: str, unfit: bool) -> None:
    assert unfit_for_job([entry], default_key_type) == ([entry] if unfit else [])


def test_every_unfit_entry_is_returned_in_order() -> None:
    bad = [{"name": "x"}, {"name": "y", "domains": []}]
    assert unfit_for_job([bad[0], GOOD, bad[1]], "ec256") == bad


def test_not_a_list_is_a_clear_error() -> None:
    with pytest.raises(AnsibleFilterError, match="must be a list"):
        unfit_for_job({"name": "a"}, "ec256")


def test_ten_thousand_in_one_pass() -> None:
    certificates = [{"name": f"c{i:05d}", "domains": [f"c{i:05d}.example"]} for i in range(10000)]
    assert unfit_for_job(certificates, "ec256") == []
