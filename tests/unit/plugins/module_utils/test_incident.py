# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the replace playbook decides for a compromised certificate: _incident.plan, one row per fleet."""

from __future__ import annotations

import typing as t

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _incident
from tests.unit.plugins.filter.fleet_data import CERT_DIR, cert, node, served

A, B = cert("a.test", "a.test", "www.a.test"), cert("b.test")


def serving(*serials: str | None) -> list[dict[str, t.Any]]:
    """Nodes web1, web2... asking for A; each serves the serial given, nothing (""), or is down (None)."""
    return [node(f"web{i}", [A], None if serial is None else [served("a.test", serial, 60)] if serial else [])
            for i, serial in enumerate(serials, 1)]


# Each row: the nodes, the compromised serial kept (None: not kept yet), and what the plan says of a.test:
# (keep_from, seed, force, new_serial), the per-node states, and what blocks the revocation.
ROWS = [
    pytest.param(serving("0A", "0A", "0A"), None, ("web1", None, False, None),
                 ["compromised"] * 3,
                 ["web1 still serves the compromised serial 0A", "web2 still serves the compromised serial 0A",
                  "web3 still serves the compromised serial 0A", "its compromised copy is not kept yet"],
                 id="before the copy is kept: keep it from the first node, order nothing yet"),
    pytest.param(serving(None, "0A", "0A"), None, ("web2", None, False, None),
                 ["down", "compromised", "compromised"],
                 ["web1 did not answer", "web2 still serves the compromised serial 0A",
                  "web3 still serves the compromised serial 0A", "its compromised copy is not kept yet"],
                 id="the first node down: keep the copy from the next one"),
    pytest.param(serving("0A", "0A", "0A"), "0A", ("web1", None, True, None),
                 ["compromised"] * 3,
                 ["web1 still serves the compromised serial 0A", "web2 still serves the compromised serial 0A",
                  "web3 still serves the compromised serial 0A"],
                 id="every node on the old serial: order the replacement"),
    pytest.param(serving("00:0a", "0a", "000A"), "0A", ("web1", None, True, None),
                 ["compromised"] * 3,
                 ["web1 still serves the compromised serial 00:0a", "web2 still serves the compromised serial 0a",
                  "web3 still serves the compromised serial 000A"],
                 id="serials compared without colons, case or leading zeros"),
    pytest.param(serving("0B", "0A", "0A"), "0A", ("web2", "web1", False, "0B"),
                 ["new", "compromised", "compromised"],
                 ["web2 still serves the compromised serial 0A", "web3 still serves the compromised serial 0A"],
                 id="one node on the new serial: it is the seed, no second order"),
    pytest.param(serving("0B", "0B", "0B"), "0A", (None, "web1", False, "0B"),
                 ["new"] * 3, [],
                 id="every node already on the new serial: revocable"),
    pytest.param(serving("0B", None, "0B"), "0A", (None, "web1", False, "0B"),
                 ["new", "down", "new"], ["web2 did not answer"],
                 id="a node down blocks the revocation and is named"),
    pytest.param(serving(None, None, None), "0A", (None, None, False, None),
                 ["down"] * 3, ["web1 did not answer", "web2 did not answer", "web3 did not answer"],
                 id="every node down: no order nobody could be given"),
    pytest.param(serving("0B", "0C", "0B"), "0A", (None, "web1", False, None),
                 ["new"] * 3, ["the nodes serve different replacements: 0B, 0C"],
                 id="two replacements served: not revocable until they agree"),
    pytest.param(serving("", "", ""), None, (None, None, False, None),
                 ["missing"] * 3,
                 ["web1 serves no copy of it", "web2 serves no copy of it", "web3 serves no copy of it",
                  "its compromised copy is not kept yet"],
                 id="a certificate no node serves: nothing to keep"),
    pytest.param(serving("", "0B", "0B"), "0A", (None, "web2", False, "0B"),
                 ["missing", "new", "new"], ["web1 serves no copy of it"],
                 id="a node serving no copy gets the replacement; it blocks until then"),
    pytest.param([node("web1", [A], [served("a.test", "0A", 60, status="Unused")])], "0A",
                 (None, None, True, None), ["missing"], ["web1 serves no copy of it"],
                 id="a copy HAProxy loaded but does not use is not served"),
]


@pytest.mark.parametrize(("fleet", "kept", "decided", "states", "blocking"), ROWS)
def test_plan(fleet: list[dict[str, t.Any]], kept: str | None, decided: tuple[t.Any, ...], states: list[str],
              blocking: list[str]) -> None:
    result = _incident.plan(fleet, ["a.test"], CERT_DIR, {} if kept is None else {"a.test": kept}, confirm=True)
    [entry] = result["certificates"]
    assert (entry["keep_from"], entry["seed"], entry["force"], entry["new_serial"]) == decided
    assert entry["compromised"] == kept
    assert [result["nodes"][m["name"]]["a.test"]["state"] for m in fleet] == states
    assert result["blocking"] == entry["blocking"] == [f"a.test: {why}" for why in blocking]
    assert result["revocable"] is result["revoke"] is (not blocking)


@pytest.mark.parametrize(("answer", "sure"), [
    pytest.param(True, True, id="the flag"),
    pytest.param("yes", True, id="yes at the prompt"),
    pytest.param(" YES\n", True, id="yes in any case, with blanks"),
    pytest.param(False, False, id="no flag and no prompt"),
    pytest.param("", False, id="no answer (no terminal)"),
    pytest.param("no", False, id="no"),
    pytest.param("y", False, id="y is not yes"),
    pytest.param(1, False, id="a number is not a confirmation"),
    pytest.param(None, False, id="nothing"),
])
def test_the_revocation_waits_for_the_operator(answer: t.Any, sure: bool) -> None:
    result = _incident.plan(serving("0B", "0B"), ["a.test"], CERT_DIR, {"a.test": "0A"}, confirm=answer)
    assert result["revocable"] is True
    assert (result["confirmed"], result["revoke"]) == (sure, sure)


def test_confirmed_does_not_override_a_blocking_node() -> None:
    result = _incident.plan(serving("0B", "0A"), ["a.test"], CERT_DIR, {"a.test": "0A"}, confirm=True)
    assert (result["revocable"], result["confirmed"], result["revoke"]) == (False, True, False)


def test_only_nodes_that_ask_for_a_certificate_count() -> None:
    fleet = [node("web1", [A, B], [served("a.test", "0B", 60), served("b.test", "1A", 60)]),
             node("web2", [B], [served("b.test", "1A", 60)]),
             node("web3", [B], None)]
    result = _incident.plan(fleet, ["a.test", "b.test"], CERT_DIR, {"a.test": "0A", "b.test": "1A"})
    assert result["nodes"] == {"web1": {"a.test": {"state": "new", "serial": "0B"},
                                        "b.test": {"state": "compromised", "serial": "1A"}},
                               "web2": {"b.test": {"state": "compromised", "serial": "1A"}},
                               "web3": {"b.test": {"state": "down", "serial": None}}}
    a, b = result["certificates"]
    assert (a["blocking"], a["force"], a["seed"]) == ([], False, "web1")
    assert (b["force"], b["keep_from"]) == (True, "web1")
    assert result["blocking"] == ["b.test: web1 still serves the compromised serial 1A",
                                  "b.test: web2 still serves the compromised serial 1A", "b.test: web3 did not answer"]
    assert (result["revocable"], result["revoke"]) == (False, False)


def test_a_name_no_node_asks_for_is_named() -> None:
    result = _incident.plan(serving("0A"), ["nope.test"], CERT_DIR)
    [entry] = result["certificates"]
    assert (entry["keep_from"], entry["seed"], entry["force"]) == (None, None, False)
    assert entry["blocking"] == ["nope.test: no node asks for it (haproxy_acme_certificates)",
                                 "nope.test: its compromised copy is not kept yet"]
    assert result["nodes"] == {}


def test_no_names_nothing_to_do() -> None:
    assert _incident.plan(serving("0A"), [], CERT_DIR) == {
        "certificates": [], "nodes": {}, "blocking": [], "revocable": True, "confirmed": False, "revoke": False}
