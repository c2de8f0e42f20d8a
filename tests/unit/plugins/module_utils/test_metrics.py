# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Prometheus text the renewal job and the fleet write (_metrics.py)."""

from __future__ import annotations

import datetime as dt
import math
import re
import typing as t
from pathlib import Path

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _metrics
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._metrics import Family

ROOT = Path(__file__).resolve().parents[4]
START = 1_750_000_000.0  # 2025-06-15T15:06:40Z
DAY = 86400.0
STANDALONE = {"topology": "standalone"}


def parse(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Prometheus' own parser (prometheus_client), as node_exporter's would read the file."""
    parser = pytest.importorskip("prometheus_client.parser")
    return {f.name: [(s.labels, s.value) for s in f.samples] for f in parser.text_string_to_metric_families(text)}


# ------------------------------------------------------------------ the text format


@pytest.mark.parametrize(("value", "escaped"), [
    pytest.param("example.com", "example.com", id="plain"),
    pytest.param('a"b', 'a\\"b', id="double quote"),
    pytest.param("a\\b", "a\\\\b", id="backslash"),
    pytest.param("a\nb", "a\\nb", id="line feed"),
    pytest.param("\\n", "\\\\n", id="a backslash before n stays two characters"),
    pytest.param("día", "día", id="UTF-8 as it is"),
    pytest.param(42, "42", id="not a string"),
])
def test_label_values_are_escaped(value: t.Any, escaped: str) -> None:
    assert _metrics.escape_label(value) == escaped


@pytest.mark.parametrize(("text", "escaped"), [
    pytest.param("Days left.", "Days left.", id="plain"),
    pytest.param('say "x"', 'say "x"', id="quotes stay in HELP"),
    pytest.param("a\\b\nc", "a\\\\b\\nc", id="backslash and line feed"),
])
def test_help_is_escaped(text: str, escaped: str) -> None:
    assert _metrics.escape_help(text) == escaped


@pytest.mark.parametrize(("value", "text"), [
    pytest.param(1, "1", id="int"),
    pytest.param(1.0, "1", id="whole float"),
    pytest.param(True, "1", id="true"),
    pytest.param(False, "0", id="false"),
    pytest.param(1750000000.25, "1750000000.25", id="fraction"),
    pytest.param(-3.5, "-3.5", id="negative"),
    pytest.param(1e300, "1e+300", id="beyond 2**53: no integer digits"),
    pytest.param(math.nan, "NaN", id="NaN"),
    pytest.param(math.inf, "+Inf", id="+Inf"),
    pytest.param(-math.inf, "-Inf", id="-Inf"),
])
def test_values(value: float, text: str) -> None:
    assert _metrics.format_value(value) == text


@pytest.mark.parametrize(("value", "seconds"), [
    pytest.param(START, START, id="seconds"),
    pytest.param(1, 1.0, id="int"),
    pytest.param("2025-06-15T15:06:40Z", START, id="RFC 3339 Z, as the modules return it"),
    pytest.param("2025-06-15T17:06:40+02:00", START, id="offset"),
    pytest.param(dt.datetime(2025, 6, 15, 15, 6, 40, tzinfo=dt.timezone.utc), START, id="aware datetime"),
    pytest.param(dt.datetime(2025, 6, 15, 15, 6, 40), None, id="naive datetime: unknown zone"),
    pytest.param("2025-06-15T15:06:40", None, id="text without a zone"),
    pytest.param("Jun 15 15:06:40 2025 GMT", None, id="not RFC 3339"),
    pytest.param("", None, id="empty"),
    pytest.param(None, None, id="None"),
    pytest.param(True, None, id="bool is no time"),
    pytest.param(math.nan, None, id="NaN"),
])
def test_timestamps(value: t.Any, seconds: float | None) -> None:
    assert _metrics.timestamp(value) == seconds


@pytest.mark.parametrize(("action", "result"), [
    ("issued", "issued"), ("renewed", "renewed"), ("unchanged", "unchanged"), ("failed", "failed"),
    (None, "failed"), ("created", "failed"),
])
def test_results(action: t.Any, result: str) -> None:
    assert _metrics.result_of(action) == result


def test_render_writes_help_and_type_then_sorted_samples_and_leaves_out_empty_families() -> None:
    text = _metrics.render([
        Family("x_seconds", "First.\nline", [({"name": "b"}, 2.0), ({"name": "a"}, 1.0)]),
        Family("empty", "Nothing.", []),
        Family("y", "Second.", [({}, 0.5)]),
    ])
    assert text == (
        "# HELP x_seconds First.\\nline\n# TYPE x_seconds gauge\n"
        'x_seconds{name="a"} 1\nx_seconds{name="b"} 2\n'
        "# HELP y Second.\n# TYPE y gauge\ny 0.5\n"
    )


def test_nothing_to_render_is_an_empty_file() -> None:
    assert _metrics.render([Family("x", "X.", [])]) == ""


# ------------------------------------------------------------------ the host job


def cert(name: str, result: str, left: float | None, lifetime: float = 90, renewed: float | None = None,
         ) -> dict[str, t.Any]:
    end = START + 2.0
    after = None if left is None else end + left * DAY
    return {"name": name, "result": result, "not_after": after,
            "not_before": None if after is None else after - lifetime * DAY, "last_renewal": renewed}


HOST_CASES = [
    pytest.param([cert("a.test", "renewed", 90, renewed=START + 1)], True,
                 {("a.test", "renewed"): 1, ("a.test", "unchanged"): 0}, {"a.test": 90.0}, id="renewed"),
    pytest.param([cert("a.test", "unchanged", 45.5)], True, {("a.test", "unchanged"): 1}, {"a.test": 45.5},
                 id="unchanged"),
    pytest.param([cert("a.test", "failed", 3), cert("b.test", "unchanged", 60)], False,
                 {("a.test", "failed"): 1, ("b.test", "failed"): 0}, {"a.test": 3.0, "b.test": 60.0},
                 id="one failed: the run failed, its expiry kept"),
    pytest.param([cert("a.test", "failed", -2)], False, {("a.test", "failed"): 1}, {"a.test": -2.0},
                 id="expired"),
    pytest.param([cert("new.test", "failed", None)], False, {("new.test", "failed"): 1, ("new.test", "issued"): 0},
                 {}, id="never issued: no expiry at all"),
    pytest.param([cert("x.test", "issued", 6, lifetime=6)], True, {("x.test", "issued"): 1}, {"x.test": 6.0},
                 id="issued"),
]


@pytest.mark.parametrize(("certificates", "success", "results", "days"), HOST_CASES)
def test_host_metrics(certificates: list[dict[str, t.Any]], success: bool, results: dict[tuple[str, str], int],
                      days: dict[str, float]) -> None:
    families = parse(_metrics.host(certificates, success, START, 2.0))
    found = {(s["name"], s["result"]): v for s, v in families["haproxy_acme_certificate_last_result"]}
    assert {k: found[k] for k in results} == results
    assert len(found) == len(certificates) * len(_metrics.RESULTS)
    assert sum(found.values()) == len(certificates)  # exactly one result holds per certificate
    left = families.get("haproxy_acme_certificate_validity_remaining_seconds", [])
    assert {s["name"]: v / DAY for s, v in left} == days
    expiry = {s["name"]: v for s, v in families.get("haproxy_acme_certificate_not_after_timestamp_seconds", [])}
    assert expiry == {c["name"]: c["not_after"] for c in certificates if c["not_after"] is not None}
    assert families["haproxy_acme_renewal_run_success"] == [(STANDALONE, 1.0 if success else 0.0)]
    assert families["haproxy_acme_renewal_run_start_timestamp_seconds"] == [(STANDALONE, START)]
    assert families["haproxy_acme_renewal_run_duration_seconds"] == [(STANDALONE, 2.0)]
    assert families["haproxy_acme_build_info"] == [({"version": _metrics.VERSION, "topology": "standalone"}, 1.0)]


def test_the_last_renewal_is_what_the_caller_says_and_absent_when_unknown() -> None:
    families = parse(_metrics.host([cert("a.test", "unchanged", 40, renewed=START - 5 * DAY),
                                    cert("b.test", "unchanged", 40)], True, START, 1.0))
    assert families["haproxy_acme_certificate_last_renewal_timestamp_seconds"] == [({"name": "a.test"},
                                                                                   START - 5 * DAY)]


def test_names_that_need_escaping_survive_the_parser() -> None:
    name = 'we"ird\\name\n'
    families = parse(_metrics.host([cert(name, "unchanged", 10)], True, START, 2.0))
    assert families["haproxy_acme_certificate_validity_remaining_seconds"] == [({"name": name}, 10 * DAY)]


def test_names_follow_the_conventions() -> None:
    """snake_case under one prefix, base units, a timestamp ends in _timestamp_seconds, HELP and TYPE for each."""
    text = _metrics.host([cert("a.test", "renewed", 30, renewed=START)], True, START, 1.0)
    names = re.findall(r"^# TYPE (\S+) gauge$", text, re.MULTILINE)
    assert len(names) == len(re.findall(r"^# HELP ", text, re.MULTILINE)) == 9
    for name in names:
        assert re.fullmatch(r"haproxy_acme_[a-z_]+", name), name
        assert "timestamp" not in name or name.endswith("_timestamp_seconds"), name
    assert not re.search(r"^[^#].* \d+ \d+$", text, re.MULTILINE), "no sample may carry a timestamp"


def test_the_version_is_the_collections() -> None:
    galaxy = (ROOT / "galaxy.yml").read_text()
    assert re.search(r"^version:\s*(\S+)", galaxy, re.MULTILINE).group(1) == _metrics.VERSION  # type: ignore[union-attr]


# ------------------------------------------------------------------ the fleet


def row(name: str, node: str, state: str, serial: str | None, reference: str | None, left: float | None,
        ) -> dict[str, t.Any]:
    after = None if left is None else START + left * DAY
    return {"certificate": name, "path": f"/c/{name}.pem", "node": node, "state": state,
            "drift": None if state == "unreachable" else state in ("older", "missing"),
            "serial": serial, "reference_serial": reference, "not_after": after, "days_left": left}


def member(name: str, *copies: tuple[str, str, float], answered: bool = True) -> dict[str, t.Any]:
    """A node serving ``(certificate, serial, notBefore)`` copies."""
    return {"name": name, "answered": answered,
            "served": [{"path": f"/c/{c}.pem", "serial": s, "not_before": b} for c, s, b in copies]}


FLEET_CASES = [
    pytest.param(
        {"certificates": [{"name": "a", "action": "unchanged"}], "not_answering": []},
        [row("a", "n1", "in sync", "0A", "0A", 50), row("a", "n2", "in sync", "0A", "0A", 50)],
        [member("n1", ("a", "0A", START - 40 * DAY)), member("n2", ("a", "0A", START - 40 * DAY))],
        True, {("a", "n1"): 1, ("a", "n2"): 1}, {"n1": 1, "n2": 1},
        {("a", "n1"): START - 40 * DAY, ("a", "n2"): START - 40 * DAY},
        id="in sync: success, the last renewal is the copy's notBefore"),
    pytest.param(
        {"certificates": [{"name": "a", "action": "renewed"}], "not_answering": ["n3"]},
        [row("a", "n1", "in sync", "0B", "0B", 90), row("a", "n2", "older", "0A", "0B", 5)],
        [member("n1", ("a", "0B", START)), member("n2", ("a", "0A", START - 85 * DAY))],
        False, {("a", "n1"): 1, ("a", "n2"): 0}, {"n1": 1, "n2": 1, "n3": 0},
        {("a", "n1"): START + 10, ("a", "n2"): START - 85 * DAY},
        id="a node dropped out, one older: failure; the new copy renewed at the run's end"),
    pytest.param(
        {"certificates": [], "not_answering": []},
        [row("a", "n1", "in sync", "0A", "0A", 50)],
        [member("n1", ("a", "0A", START - 40 * DAY))],
        False, {("a", "n1"): 1}, {"n1": 1}, {("a", "n1"): START - 40 * DAY},
        id="the order step did not report the certificate: failure"),
    pytest.param(
        {"certificates": [{"name": "a", "action": "failed"}], "not_answering": []},
        [row("a", "n1", "in sync", "0A", "0A", 2), row("a", "n2", "unreachable", None, "0A", None)],
        [member("n1", ("a", "0A", START - 88 * DAY)), member("n2", answered=False)],
        False, {("a", "n1"): 1}, {"n1": 1, "n2": 0}, {("a", "n1"): START - 88 * DAY},
        id="a failed order; an unreachable row has no samples"),
    pytest.param(
        {"certificates": [{"name": "a", "action": "unchanged"}], "not_answering": []},
        [row("a", "n1", "in sync", "0A", "0A", 50), row("a", "n2", "missing", None, "0A", None)],
        [member("n1", ("a", "0A", START - 40 * DAY)), member("n2")],
        False, {("a", "n1"): 1, ("a", "n2"): 0}, {"n1": 1, "n2": 1}, {("a", "n1"): START - 40 * DAY},
        id="missing on a node: not in sync, no expiry there"),
]


@pytest.mark.parametrize(("summary", "rows", "nodes", "success", "in_sync", "answered", "renewal"), FLEET_CASES)
def test_fleet_metrics(summary: dict[str, t.Any], rows: list[dict[str, t.Any]], nodes: list[dict[str, t.Any]],
                       success: bool, in_sync: dict[tuple[str, str], int], answered: dict[str, int],
                       renewal: dict[tuple[str, str], float]) -> None:
    families = parse(_metrics.fleet(summary, {"rows": rows}, nodes, START, START + 10))
    assert {(s["name"], s["node"]): v for s, v in families["haproxy_acme_certificate_in_sync"]} == in_sync
    assert {s["node"]: v for s, v in families["haproxy_acme_node_answered"]} == answered
    assert families["haproxy_acme_renewal_run_success"] == [({"topology": "fleet"}, 1.0 if success else 0.0)]
    assert families["haproxy_acme_renewal_run_duration_seconds"] == [({"topology": "fleet"}, 10.0)]
    assert families["haproxy_acme_build_info"] == [({"version": _metrics.VERSION, "topology": "fleet"}, 1.0)]
    expiry = {(s["name"], s["node"]): v for s, v in families["haproxy_acme_certificate_not_after_timestamp_seconds"]}
    assert expiry == {(r["certificate"], r["node"]): r["not_after"] for r in rows if r["not_after"] is not None}
    last = {(s["name"], s["node"]): v for s, v in families["haproxy_acme_certificate_last_renewal_timestamp_seconds"]}
    assert last == renewal
    results = {(s["name"], s["result"]): v for s, v in families.get("haproxy_acme_certificate_last_result", [])}
    assert results == {(c["name"], r): float(r == c["action"]) for c in summary["certificates"]
                       for r in _metrics.RESULTS}
