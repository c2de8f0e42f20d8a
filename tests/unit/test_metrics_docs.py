# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""docs/metrics.md: its alerting rules are valid rule YAML on the metrics the job writes.

With ``promtool`` (Debian's ``prometheus`` package) on PATH, Prometheus' own checks run
too: ``promtool check rules`` on the rules, ``promtool check metrics`` (the naming
linter) on a host and a fleet file. Without it those checks are skipped, saying so.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import typing as t
from pathlib import Path

import pytest
import yaml

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _metrics

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "metrics.md"
START = 1_750_000_000.0
DAY = 86400.0


def rule_file() -> str:
    blocks = re.findall(r"^```yaml\n(.*?)^```", DOC.read_text(), re.MULTILINE | re.DOTALL)
    found = [b for b in blocks if b.startswith("groups:")]
    assert len(found) == 1, "docs/metrics.md must hold one ```yaml block that starts with groups:"
    return found[0]


def host_file() -> str:
    return _metrics.host([{"name": "a.example", "result": "renewed", "not_before": START,
                           "not_after": START + 90 * DAY, "last_renewal": START}], True, START, 1.5)


def fleet_file() -> str:
    rows = [{"certificate": "a.example", "path": "/c/a.example.pem", "node": n, "state": "in sync", "drift": False,
             "serial": "0A", "reference_serial": "0A", "not_after": START + 60 * DAY} for n in ("lb1", "lb2")]
    nodes = [{"name": n, "answered": True, "served": [{"path": "/c/a.example.pem", "serial": "0A",
                                                       "not_before": START - 30 * DAY}]} for n in ("lb1", "lb2")]
    summary = {"certificates": [{"name": "a.example", "action": "unchanged"}], "not_answering": []}
    return _metrics.fleet(summary, {"rows": rows}, nodes, START, START + 30)


def test_the_rules_are_rule_yaml_on_the_metrics_written() -> None:
    rules = yaml.safe_load(rule_file())
    assert list(rules) == ["groups"]
    (group,) = rules["groups"]
    assert group["name"] and len(group["rules"]) == 5
    written = set(re.findall(r"^# TYPE (\S+) ", host_file() + fleet_file(), re.MULTILINE))
    for rule in group["rules"]:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert re.fullmatch(r"HaproxyAcme[A-Za-z]+", rule["alert"]) and rule["labels"]["severity"]
        used = set(re.findall(r"\bhaproxy_acme_[a-z_]+", rule["expr"]))
        assert used <= written, (rule["alert"], used - written)
    assert "haproxy_acme_renewal_run_start_timestamp_seconds" in rule_file()


def promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.skip("promtool not found (Debian's prometheus package); rule YAML checked without it")
    return found


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    tool = promtool()
    path = tmp_path / "haproxy-acme.rules.yml"
    path.write_text(rule_file())
    proc = subprocess.run([tool, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 5 rules found" in proc.stdout + proc.stderr


@pytest.mark.parametrize("make", [host_file, fleet_file], ids=["host", "fleet"])
def test_promtool_finds_nothing_to_lint_in_the_metrics(make: t.Callable[[], str]) -> None:
    tool = promtool()
    proc = subprocess.run([tool, "check", "metrics"], input=make(), capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), proc.stdout + proc.stderr
