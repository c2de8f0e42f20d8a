# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The replace_plan filter: what it accepts and refuses, and the steps of one replacement, run after run."""

from __future__ import annotations

import typing as t
from collections import UserDict

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.tlsops.haproxy_acme.plugins.filter import replace_plan as plugin
from ansible_collections.tlsops.haproxy_acme.plugins.filter.replace_plan import replace_plan
from tests.unit.plugins.filter.fleet_data import CERT_DIR, cert, node, served

A = cert("a.test")


def fleet(*serials: str | None) -> list[dict[str, t.Any]]:
    return [node(f"web{i}", [A], None if serial is None else [served("a.test", serial, 60)])
            for i, serial in enumerate(serials, 1)]


def test_the_filter_is_registered() -> None:
    assert plugin.FilterModule().filters() == {"replace_plan": replace_plan}


@pytest.mark.parametrize(("args", "message"), [
    pytest.param((fleet("0A"), "a.test", CERT_DIR), "expects a list of certificate names", id="names as a string"),
    pytest.param((fleet("0A"), 3, CERT_DIR), "expects a list of certificate names", id="names as a number"),
    pytest.param((fleet("0A"), ["a.test"], CERT_DIR, ["0A"]), "compromised serials as a dict",
                 id="compromised as a list"),
    pytest.param(({"name": "web1"}, ["a.test"], CERT_DIR), r"^replace_plan: a list of nodes", id="nodes not a list"),
    pytest.param(([{"answered": True}], ["a.test"], CERT_DIR), r"^replace_plan: each node must be a dictionary",
                 id="a node without a name"),
    pytest.param(([{"name": "web1", "served": "x"}], ["a.test"], CERT_DIR), r"^replace_plan: node web1: served",
                 id="served not a list"),
])
def test_refuses_what_is_not_a_plan_input(args: tuple[t.Any, ...], message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message):
        replace_plan(*args)


def test_takes_the_lazy_mappings_ansible_hands_over() -> None:
    nodes = [UserDict(m) for m in fleet("0B", "0B")]
    result = replace_plan(nodes, ("a.test",), CERT_DIR, UserDict({"a.test": "0A"}), confirmed="yes")
    assert (result["revocable"], result["revoke"], result["certificates"][0]["seed"]) == (True, True, "web1")


# One replacement, step by step as the playbook calls the filter: (nodes, compromised, confirmed) ->
# (force, seed, revocable, revoke).
STEPS = [
    pytest.param(fleet("0A", "0A"), None, False, (False, None, False, False), id="1 before the copy is kept"),
    pytest.param(fleet("0A", "0A"), {"a.test": "0A"}, False, (True, None, False, False), id="2 copy kept: order"),
    pytest.param(fleet("0B", "0B"), {"a.test": "0A"}, "", (False, "web1", True, False),
                 id="3 pushed, no terminal: not revoked"),
    pytest.param(fleet("0B", "0B"), {"a.test": "0A"}, True, (False, "web1", True, True), id="4 confirmed: revoke"),
    pytest.param(fleet("0B", None), {"a.test": "0A"}, True, (False, "web1", False, False),
                 id="a node down: not revoked even when confirmed"),
    pytest.param(fleet("0B", "0A"), {"a.test": "0A"}, True, (False, "web1", False, False),
                 id="a rerun after a failed push: no order, the seed's copy goes out"),
]


@pytest.mark.parametrize(("nodes", "compromised", "confirmed", "expected"), STEPS)
def test_steps(nodes: list[dict[str, t.Any]], compromised: dict[str, str] | None, confirmed: t.Any,
               expected: tuple[t.Any, ...]) -> None:
    result = replace_plan(nodes, ["a.test"], CERT_DIR, compromised, confirmed=confirmed)
    [entry] = result["certificates"]
    assert (entry["force"], entry["seed"], result["revocable"], result["revoke"]) == expected
