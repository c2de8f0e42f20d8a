# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The report as a reader gets it: Markdown, JSON and HTML written by the real task files
and templates from fixture data (tests/integration/report_fixture.py), the HTML loaded in
headless Chromium and checked in its DOM. No nodes, no CA."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.integration.report_fixture import ASKS, NODES, PIPE, PLAIN, STAR, TICK, render

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: A row per certificate and node that asks for it: three nodes ask for four, web4 for two.
PAIRS = {(c["name"], n) for n in NODES for c in ASKS[n]}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    proc = render(out, out / "play")
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    return out


def cells(line: str) -> list[str]:
    """The cells of a Markdown table row, split at the pipes that are not escaped."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def test_json_has_a_row_per_certificate_and_node(report: Path) -> None:
    data = json.loads((report / "haproxy-acme-report.json").read_text())
    assert {(r["certificate"], r["node"]) for r in data["rows"]} == PAIRS and len(data["rows"]) == len(PAIRS)
    # web4 asks for two certificates as a play var: it is reported with those two, not with all that are served.
    assert sorted(r["certificate"] for r in data["rows"] if r["node"] == "web4") == sorted([PIPE, PLAIN])
    assert data["counts"] == {"nodes": 4, "answered": 3, "rows": 14, "states": {
        "in sync": 3, "due": 3, "expired": 2, "older": 1, "missing": 1, "unreachable": 1}}
    assert data["drift"] == [TICK, PLAIN] and data["unreachable"] == ["web4"]


def test_markdown_escapes_names_and_keeps_the_table_shape(report: Path) -> None:
    markdown = (report / "haproxy-acme-report.md").read_text()
    lines = markdown.splitlines()
    start = lines.index("## Certificates, most urgent first")
    header, rows = cells(lines[start + 2]), [cells(x) for x in lines[start + 4:] if x.startswith("|")]
    assert header[:4] == ["Certificate", "Node", "State", "Drift"] and len(header) == 10
    assert len(rows) == len(PAIRS) and all(len(r) == 10 for r in rows), rows
    assert rows[0][:4] == [r"\`api\`.example", "web2", "missing", "yes"]
    assert {r[0] for r in rows} == {r"shop\|eu.example", r"\*.wild\_card.example", r"\`api\`.example", "blog.example"}
    assert r"Certificates with drift: \`api\`.example, blog.example" in markdown
    nodes_at = lines.index("## Nodes")
    assert [cells(x) for x in lines[nodes_at + 4:nodes_at + 8]] == [
        ["web1", "expired", "4", "blog.example", "2.6.12-1+deb12u1", "4711"],
        ["web2", "missing", "4", r"\`api\`.example", "3.0.10-1", "4712"],
        ["web3", "expired", "4", "none", "2.6.12-1+deb12u1", "4713"],
        ["web4", "unreachable", "2", "?", "-", "-"]]


class Tables(HTMLParser):
    """The text of every cell of every table in a document, by table id: {id: [[cell, ...], ...]}."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.classes: dict[str, list[str]] = {}
        self._table: str | None = None
        self._in_body = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag == "table":
            self._table = attr.get("id") or ""
            self.tables[self._table], self.classes[self._table] = [], []
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body and self._table is not None:
            self.tables[self._table].append([])
            self.classes[self._table].append(attr.get("class") or "")
        elif tag == "td" and self._in_body:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    """Headless Chromium, offline and with a profile of its own."""
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium): "
                                             "the HTML report is checked in a real browser's DOM")
def test_html_in_a_browser_lists_every_certificate_and_node_most_urgent_first(report: Path, tmp_path: Path) -> None:
    page = report / "haproxy-acme-report.html"
    assert not re.search(r"<script|<link|src=|url\(", page.read_text()), "the page must be self-contained"
    proc = chromium("--dump-dom", page.as_uri(), profile=tmp_path / "profile")
    assert proc.returncode == 0 and "</html>" in proc.stdout, proc.stderr[-3000:]
    dom = Tables()
    dom.feed(proc.stdout)
    rows = dom.tables["certificates"]
    assert {(r[0], r[1]) for r in rows} == PAIRS and len(rows) == len(PAIRS)
    assert rows[0][:4] == [TICK, "web2", "missing", "yes"], rows[0]
    # Then by days left: the expired copies, the due one, the older one, the rest; the silent node last.
    days = [float(r[4]) for r in rows if r[4] != "-"]
    assert days == sorted(days) and days[0] < 0
    assert [r[2] for r in rows[1:6]] == ["expired", "expired", "due", "due", "due"]
    assert {r[2] for r in rows[-2:]} == {"unreachable"} and "unreachable" not in {r[2] for r in rows[:-2]}
    assert dom.classes["certificates"][0] == "s-missing"
    older = next(r for r in rows if r[2] == "older")
    assert (older[0], older[1], older[6], older[7]) == (PLAIN, "web1", "0D00", "0D01")  # serial and the reference
    star = next(r for r in rows if r[0] == STAR)
    assert (star[8], star[9]) == ("/C=US/O=Let's Encrypt/CN=R11", "*.wild_card.example")  # issuer, SANs
    assert dom.tables["nodes"] == [
        ["web1", "expired", "4", "blog.example", "2.6.12-1+deb12u1", "4711"],
        ["web2", "missing", "4", TICK, "3.0.10-1", "4712"],
        ["web3", "expired", "4", "none", "2.6.12-1+deb12u1", "4713"],
        ["web4", "unreachable", "2", "?", "-", "-"]]
    counts = {r[0]: int(r[1]) for r in dom.tables["states"]}
    assert counts == {"in sync": 3, "due": 3, "expired": 2, "older": 1, "missing": 1, "unreachable": 1}


def test_html_escapes_what_it_shows(report: Path) -> None:
    html = (report / "haproxy-acme-report.html").read_text()
    assert "shop|eu.example" in html and "Let&#39;s Encrypt" in html and "<td>Let's" not in html
