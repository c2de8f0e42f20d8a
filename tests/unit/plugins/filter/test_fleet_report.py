# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The report's decisions (fleet_report) and its Markdown escaping (markdown_escape)."""

from __future__ import annotations

import typing as t

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.tlsops.haproxy_acme.plugins.filter import fleet_report as report_plugin
from ansible_collections.tlsops.haproxy_acme.plugins.filter import markdown_escape as escape_plugin
from ansible_collections.tlsops.haproxy_acme.plugins.filter.fleet_report import fleet_report
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._fleet import markdown_escape
from tests.unit.plugins.filter.fleet_data import CERT_DIR, NOW, cert, node, served

NOW_TEXT = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
A = cert("a.test")
REF = served("a.test", "0A", 60)  # the newest copy: 60 of 90 days left


def report(nodes: list[dict[str, t.Any]], **options: t.Any) -> dict[str, t.Any]:
    return fleet_report(nodes, CERT_DIR, now=NOW_TEXT, **options)


def state_of(entries: list[dict[str, t.Any]] | None, **options: t.Any) -> str:
    """web2's state for a.test when web1 serves the reference copy and web2 serves ``entries``."""
    rows = report([node("web1", [A], [REF]), node("web2", [A], entries)], **options)["rows"]
    return next(r["state"] for r in rows if r["node"] == "web2")


# ---------------------------------------------------------------------- drift


@pytest.mark.parametrize(("entries", "options", "state"), [
    pytest.param([REF], {}, "in sync", id="in sync: the reference copy"),
    pytest.param([served("a.test", "0A", 60, status="Unused")], {}, "missing", id="missing: loaded, not served"),
    pytest.param([], {}, "missing", id="missing: not loaded at all"),
    pytest.param(None, {}, "unreachable", id="unreachable: did not answer"),
    pytest.param([served("a.test", "09", 20)], {}, "older", id="older: another copy"),
    pytest.param([served("a.test", "09", 40)], {"topology": "standalone"}, "in sync",
                 id="standalone: each host its own copy"),
    pytest.param([served("a.test", "09", 25)], {"topology": "standalone"}, "due",
                 id="standalone: its own copy, due"),
    pytest.param([served("a.test", "09", 20)], {"topology": "standalone", "remaining_days": "10"}, "in sync",
                 id="standalone: remaining_days decides"),
    pytest.param([served("a.test", "09", -1)], {"topology": "standalone"}, "expired", id="standalone: expired"),
])
def test_drift_states(entries: list[dict[str, t.Any]] | None, options: dict[str, t.Any], state: str) -> None:
    assert state_of(entries, **options) == state


@pytest.mark.parametrize(("left", "lifetime", "remaining_days", "state"), [
    pytest.param(60, 90, None, "in sync", id="two thirds left"),
    pytest.param(29, 90, None, "due", id="less than a third left"),
    pytest.param(29, 90, "", "due", id="empty remaining_days: the lifetime rule"),
    pytest.param(40, 90, 45, "due", id="fewer than remaining_days"),
    pytest.param(40, 90, "30", "in sync", id="more than remaining_days"),
    pytest.param(3.5, 6, None, "in sync", id="6-day certificate, more than half left"),
    pytest.param(2.5, 6, None, "due", id="6-day certificate, less than half left"),
    pytest.param(-0.5, 90, None, "expired", id="expired"),
])
def test_due_and_expired(left: float, lifetime: float, remaining_days: t.Any, state: str) -> None:
    copy = served("a.test", "0A", left, lifetime)
    rows = report([node("web1", [A], [copy]), node("web2", [A], [copy])], remaining_days=remaining_days)["rows"]
    assert {r["state"] for r in rows} == {state}


def test_the_reference_is_the_latest_not_after_among_answering_nodes() -> None:
    newest = served("a.test", "0C", 80)
    rows = report([node("web1", [A], [served("a.test", "0B", 50)]), node("web2", [A], [newest]),
                   node("web3", [A], [served("a.test", "0A", 20, status="Unused")])])["rows"]
    assert {r["node"]: (r["state"], r["reference_serial"]) for r in rows} == {
        "web1": ("older", "0C"), "web2": ("in sync", "0C"), "web3": ("missing", "0C")}


def test_a_certificate_no_node_serves_is_missing_everywhere() -> None:
    result = report([node("web1", [A], []), node("web2", [A], [])])
    assert [(r["node"], r["state"], r["reference_serial"]) for r in result["rows"]] == [
        ("web1", "missing", None), ("web2", "missing", None)]
    assert result["drift"] == ["a.test"]


def test_a_node_with_no_list_expects_what_any_node_serves_from_the_certificate_directory() -> None:
    b = served("b.test", "0B", 60)
    elsewhere = {**served("x.test", "0X", 60), "path": "/srv/x.test.pem"}
    rows = report([node("web1", [A], [REF]), node("web2", None, [b, elsewhere]), node("web3", [], [])])["rows"]
    assert sorted((r["certificate"], r["node"], r["state"]) for r in rows) == [
        ("a.test", "web1", "in sync"), ("a.test", "web2", "missing"), ("a.test", "web3", "missing"),
        ("b.test", "web2", "in sync"), ("b.test", "web3", "missing")]


def test_rows_carry_what_the_report_shows() -> None:
    copy = {**REF, "domains": ["a.test", "www.a.test"], "issuer": "/C=US/O=Let's Encrypt/CN=R11"}
    [row, other] = report([node("web1", [A], [copy]), node("web2", [A], None)])["rows"]
    assert row == {"certificate": "a.test", "path": f"{CERT_DIR}/a.test.pem", "node": "web1", "state": "in sync",
                   "drift": False, "serial": "0A", "reference_serial": "0A", "not_after": REF["not_after"],
                   "days_left": 60.0, "issuer": "/C=US/O=Let's Encrypt/CN=R11", "domains": ["a.test", "www.a.test"]}
    assert other["state"] == "unreachable" and other["drift"] is None and other["serial"] is None


# ------------------------------------------------------------------- urgency

B, C, D = cert("b.test"), cert("c.test"), cert("d.test")
FLEET = [
    node("web1", [A, B, C, D], [REF, served("b.test", "0B", 10), served("c.test", "0C", -2),
                                served("d.test", "0E", 20)], pid=11, version="2.6.12"),
    node("web2", [A, B, C, D], [REF, served("b.test", "0B", 10), served("d.test", "0D", 80)], pid=22,
         version="3.0.10"),
    node("web3", [A, B, C, D], [REF, served("b.test", "0B", 10), served("c.test", "0C", -2),
                                served("d.test", "0D", 80)], pid=33, version="2.6.12"),
    node("web4", [A, B, C, D], None),
]


def test_rows_come_most_urgent_first() -> None:
    rows = report(FLEET)["rows"]
    assert len(rows) == 16  # a row per certificate and node, unreachable ones included
    assert [(r["certificate"], r["node"], r["state"]) for r in rows] == [
        ("c.test", "web2", "missing"),  # not served at all
        ("c.test", "web1", "expired"), ("c.test", "web3", "expired"),  # -2 days
        ("b.test", "web1", "due"), ("b.test", "web2", "due"), ("b.test", "web3", "due"),  # 10 days
        ("d.test", "web1", "older"),  # 20 days
        ("a.test", "web1", "in sync"), ("a.test", "web2", "in sync"), ("a.test", "web3", "in sync"),  # 60
        ("d.test", "web2", "in sync"), ("d.test", "web3", "in sync"),  # 80
        ("a.test", "web4", "unreachable"), ("b.test", "web4", "unreachable"),  # unknown: last
        ("c.test", "web4", "unreachable"), ("d.test", "web4", "unreachable")]


def test_equal_days_put_drift_first() -> None:
    same_day = served("a.test", "0B", 60)  # as many days left as the reference, another serial
    rows = report([node("web1", [A], [REF]), node("web2", [A], [same_day])])["rows"]
    assert [(r["node"], r["state"]) for r in rows] == [("web2", "older"), ("web1", "in sync")]


def test_nodes_are_counted_not_rows() -> None:
    result = report(FLEET)
    assert result["counts"] == {"nodes": 4, "answered": 3, "rows": 16, "states": {
        "in sync": 3, "due": 3, "expired": 2, "older": 1, "missing": 1, "unreachable": 1}}
    assert result["drift"] == ["c.test", "d.test"] and result["unreachable"] == ["web4"]


def test_node_lines_give_worst_state_drift_and_haproxy() -> None:
    lines = {n["name"]: n for n in report(FLEET)["nodes"]}
    states = [lines[n]["state"] for n in ("web1", "web2", "web3", "web4")]
    assert states == ["expired", "missing", "expired", "unreachable"]
    assert lines["web1"]["drift"] == ["d.test"] and lines["web2"]["drift"] == ["c.test"]
    assert (lines["web2"]["haproxy_version"], lines["web2"]["worker_pid"]) == ("3.0.10", 22)
    assert (lines["web4"]["haproxy_version"], lines["web4"]["worker_pid"], lines["web4"]["drift"]) == (None, None, [])
    assert lines["web1"]["states"] == ["in sync", "due", "expired", "older"] and lines["web1"]["certificates"] == 4


def test_a_node_that_should_serve_nothing_has_no_state() -> None:
    assert report([node("web1", [], [])])["nodes"][0]["state"] is None


@pytest.mark.parametrize(("remaining_days", "rule"), [
    (None, "a third of each certificate's lifetime left (half under 10 days), or the CA's renewal window (ARI)"),
    ("", "a third of each certificate's lifetime left (half under 10 days), or the CA's renewal window (ARI)"),
    ("30", "30 days left, or the CA's renewal window (ARI)"),
    (7.5, "7.5 days left, or the CA's renewal window (ARI)"),
])
def test_header(remaining_days: t.Any, rule: str) -> None:
    result = report([node("web1", [A], [REF])], remaining_days=remaining_days, topology="standalone")
    assert result["renewal_rule"] == rule
    assert (result["generated"], result["topology"]) == ("2025-06-01 00:00:00 UTC", "standalone")


@pytest.mark.parametrize(("nodes", "options"), [
    ("web1", {}), ([node("web1", [{"domains": ["a.test"]}], [])], {}), ([node("web1", [A], [])], {"topology": "x"}),
    ([node("web1", [A], [])], {"remaining_days": "soon"}), ([node("web1", [A], [])], {"now": "yesterday"}),
])
def test_report_refuses_bad_input(nodes: t.Any, options: dict[str, t.Any]) -> None:
    with pytest.raises(AnsibleFilterError, match=r"^fleet_report: "):
        fleet_report(nodes, CERT_DIR, **options)


# ------------------------------------------------------------------ markdown


@pytest.mark.parametrize(("text", "escaped"), [
    ("example.com", "example.com"),
    ("a|b", r"a\|b"),
    ("*.example.com", r"\*.example.com"),
    ("my_cert_name", r"my\_cert\_name"),
    ("`code`", r"\`code\`"),
    (r"back\slash", r"back\\slash"),
    ("[link](x) <b>", r"\[link\](x) \<b\>"),
    ("~strike~ #1", r"\~strike\~ \#1"),
    ("two\nlines", "two lines"),
    (None, ""),
    (42, "42"),
])
def test_markdown_escape(text: t.Any, escaped: str) -> None:
    assert markdown_escape(text) == escaped


def test_registered() -> None:
    assert report_plugin.FilterModule().filters() == {"fleet_report": fleet_report}
    assert escape_plugin.FilterModule().filters() == {"markdown_escape": markdown_escape}
