# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The playbooks' variables are the haproxy_acme role's argument spec.

* A wrong type or value stops ``site``, ``renew`` and ``report`` at the role's first
  task with Ansible's own argument-spec message, before any task of the role ran.
  No node is needed: the playbooks run against local hosts, one per bad input, each
  with its own host vars, so one run per playbook covers every case.
* ``ansible-doc -t role tlsops.haproxy_acme.haproxy_acme`` documents every
  ``haproxy_acme_*`` variable the role's tasks read.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

from tests.unit.test_role_specs import PLAYBOOK_ONLY, variables_read

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / "build" / "collections"
BIN = Path(sys.executable).parent
GOOD = [{"name": "a.example", "domains": ["a.example"]}]
# host -> (its variables, what the argument-spec message must hold)
CASES: dict[str, tuple[dict[str, t.Any], str]] = {
    "topology": ({"haproxy_acme_topology": "cluster"},
                 "value of haproxy_acme_topology must be one of: standalone, fleet, got: cluster"),
    "certificates-string": ({"haproxy_acme_certificates": "example.com"},
                            "Elements value for option 'haproxy_acme_certificates' is of type str and we were "
                            "unable to convert to dict"),
    "certificate-key": ({"haproxy_acme_certificates": [{"name": "a", "domains": ["a.example"], "keytype": "rsa2048"}]},
                        "haproxy_acme_certificates.keytype. Supported parameters include: domains, key_type, name, "
                        "profile."),
    "certificate-key-type": ({"haproxy_acme_certificates": [{"name": "a", "domains": ["a.example"],
                                                             "key_type": "rsa1024"}]},
                             "value of key_type must be one of: ec256, ec384, rsa2048, rsa3072, rsa4096, got: rsa1024 "
                             "found in haproxy_acme_certificates"),
    "certificate-name": ({"haproxy_acme_certificates": [{"domains": ["a.example"]}]},
                         "missing required arguments: name found in haproxy_acme_certificates"),
    "remaining-days": ({"haproxy_acme_remaining_days": "soon"},
                       "argument 'haproxy_acme_remaining_days' is of type str and we were unable to convert to int"),
}
# Per playbook: the cases its entry point checks (report reads no ACME settings and
# does not ask for key types), and the host that passes the spec and stops at the
# preflight instead (report has no preflight).
ENTRY_CASES = {
    "site": ({**CASES, "concurrency": ({"haproxy_acme_concurrency": "many"},
                                       "argument 'haproxy_acme_concurrency' is of type str and we were unable to "
                                       "convert to int"),
              "terms": ({"haproxy_acme_terms_agreed": "maybe"},
                        "argument 'haproxy_acme_terms_agreed' is of type str and we were unable to convert to bool")},
             "Set haproxy_acme_terms_agreed to true"),
    "renew": ({**CASES, "force": ({"haproxy_acme_force": "yes please"},
                                  "argument 'haproxy_acme_force' is of type str and we were unable to convert to bool"),
               "report": ({"haproxy_acme_report": [1]},
                          "argument 'haproxy_acme_report' is of type list and we were unable to convert to bool")},
              "Set haproxy_acme_terms_agreed to true"),
    "report": ({name: case for name, case in CASES.items() if name != "certificate-key-type"}, None),
}
_FATAL = re.compile(r"^fatal: \[(?P<host>[^\]]+)\]: FAILED! => (?P<result>\{.*\})$", re.MULTILINE)
_TASK = re.compile(r"^TASK \[(?P<task>.*)\] \*+$", re.MULTILINE)


def env() -> dict[str, str]:
    return {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_RETRY_FILES_ENABLED": "false", "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_CALLBACK_RESULT_FORMAT": "json", "ANSIBLE_CALLBACK_FORMAT_PRETTY": "false"}


def run_playbook(tmp_path: Path, playbook: str) -> tuple[subprocess.CompletedProcess[str], dict[str, dict[str, t.Any]]]:
    """The playbook against one local host per case (plus ``good``); {host: its failure result}."""
    cases, _ = ENTRY_CASES[playbook]
    hosts = {name: {"haproxy_acme_certificates": GOOD, **variables} for name, (variables, _) in cases.items()}
    hosts["good"] = {"haproxy_acme_certificates": GOOD}
    inventory = {"all": {"hosts": hosts, "vars": {"ansible_connection": "local",
                                                  "ansible_python_interpreter": sys.executable}}}
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    run = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(tmp_path / "inventory.json"), "-e", "haproxy_acme_hosts=all",
         "-e", json.dumps({"haproxy_acme_report_dir": str(tmp_path / "report")}),
         str(ROOT / "playbooks" / f"{playbook}.yml")],
        capture_output=True, text=True, env=env(), timeout=300, check=False, cwd=tmp_path)
    failures = {m.group("host"): json.loads(m.group("result")) for m in _FATAL.finditer(run.stdout)}
    return run, failures


@pytest.mark.parametrize("playbook", sorted(ENTRY_CASES))
def test_a_wrong_type_or_value_stops_the_play_with_the_argument_spec_message(playbook: str, tmp_path: Path) -> None:
    cases, preflight = ENTRY_CASES[playbook]
    run, failures = run_playbook(tmp_path, playbook)
    output = run.stdout + run.stderr
    assert run.returncode != 0, output
    for host, (_, message) in cases.items():
        result = failures.get(host)
        assert result is not None, f"{host} did not fail:\n{output[-4000:]}"
        assert result["msg"].startswith("Validation of arguments failed:"), (host, result["msg"])
        assert message in result["msg"], (host, result["msg"])
        assert result["validate_args_context"] == {
            "argument_spec_name": playbook, "name": "haproxy_acme", "type": "role",
            "path": str(COLLECTIONS / "ansible_collections" / "tlsops" / "haproxy_acme" / "roles" / "haproxy_acme"),
        }
    # Nothing but fact gathering ran before the check: its task comes first.
    tasks = _TASK.findall(run.stdout)
    tasks = [task for task in tasks if task != "Gathering Facts"]
    assert tasks and tasks[0].startswith(f"tlsops.haproxy_acme.haproxy_acme : Validating arguments against arg spec "
                                         f"'{playbook}'"), tasks
    # The good host passes the spec, defaults included: site and renew stop it at their
    # preflight (no terms agreed); report goes on to read HAProxy, which is not there.
    good = failures.get("good", {}).get("msg", "")
    assert not good.startswith("Validation"), good
    if preflight is not None:
        assert preflight in good, good
        assert tasks[1] == "tlsops.haproxy_acme.haproxy_acme : Derive the ACME settings", tasks


def test_ansible_doc_lists_every_variable_the_tasks_read() -> None:
    run = subprocess.run([str(BIN / "ansible-doc"), "-t", "role", "-j", "tlsops.haproxy_acme.haproxy_acme"],
                         capture_output=True, text=True, env=env(), timeout=120, check=True)
    doc = json.loads(run.stdout)["tlsops.haproxy_acme.haproxy_acme"]
    entry_points = doc["entry_points"]
    assert {"main", "site", "renew", "report"} <= set(entry_points)
    listed = {name for entry in entry_points.values() for name in entry["options"]}
    read = variables_read(ROOT / "roles" / "haproxy_acme")
    assert sorted(read - listed) == []
    assert listed >= PLAYBOOK_ONLY
    # Every entry point documents the variables of the hosts, topology and certificates,
    # and each of them with a description and a type.
    for name, entry in entry_points.items():
        assert {"haproxy_acme_hosts", "haproxy_acme_topology", "haproxy_acme_certificates"} <= set(entry["options"]), name
        for option, spec in entry["options"].items():
            assert spec.get("description") and spec.get("type"), (name, option)
    assert set(entry_points["site"]["options"]["haproxy_acme_certificates"]["options"]) == {
        "name", "domains", "key_type", "profile"}
