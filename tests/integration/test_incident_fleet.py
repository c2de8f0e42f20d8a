# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The rollover and replace playbooks on booted nodes: one 3-node fleet, in order.

1. ``site``, then ``rollover`` of the controller's account: HAProxy's master and worker
   PIDs unchanged on every node, every node answers a challenge with the new
   thumbprint, the old key kept as ``<key>.<UTC>.old`` (0600).
2. ``rollover`` again changes nothing.
3. A forced ``renew`` orders every certificate with the new key: pebble validates them
   through nodes 2 and 3 only (its challtestsrv points every name at node 2 or node 3,
   FleetLab), never through the first node.
4. The old key was retired: its account is deactivated, so it registers nothing.
5. ``replace`` without confirmation serves a new serial everywhere and revokes nothing;
   confirmed, it revokes the old one (pebble: Revoked, reason 1, keyCompromise).
6. Node 3 becomes a standalone host with a name of its own (``site --limit``); its
   ``rollover`` moves the account of its timer job's key, and the timer's own service,
   forced, then renews with the new key, HAProxy's PIDs unchanged.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import typing as t
import urllib.request
from pathlib import Path

import pytest

from tests.integration.fleet_harness import FleetLab, Run
from tests.lab.nodes import nodes as lab_nodes

pytestmark = [
    pytest.mark.nodes,
    pytest.mark.skipif(os.geteuid() != 0, reason="booting nodes needs root"),
    pytest.mark.skipif(not (shutil.which("systemd-nspawn") and shutil.which("debootstrap")),
                       reason="needs systemd-container and debootstrap"),
    pytest.mark.skipif(not (shutil.which("pebble") and shutil.which("pebble-challtestsrv")), reason="needs pebble"),
]

SET_NAME = "pytest-incident"
TOKEN = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"
SOLO = "solo.incident.test"
HOST_KEY = "/var/lib/acme/account/account.key"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[FleetLab]:
    with FleetLab(tmp_path_factory.mktemp("incident"), SET_NAME, nodes=3, certs=2) as lab:
        assert lab.lab is not None and lab.lab.info is not None
        key = lab.workdir / "controller" / "account.key"
        key.parent.mkdir(mode=0o700)
        key.write_text(Path(lab.lab.info.lab_account_key_path).read_text())
        key.chmod(0o600)
        common = json.loads(lab.site_vars.read_text())
        lab.site_vars.write_text(json.dumps({**common, "haproxy_acme_account_key_path": str(key)}))
        lab.renew_vars = lab.site_vars
        yield lab


@pytest.fixture(scope="module")
def memo() -> dict[str, t.Any]:
    return {}


def explain(run: Run) -> str:
    return f"rc={run.rc} recap={run.recap}\n{run.tail(80)}"


def challenge(fleet: FleetLab, node: lab_nodes.Node) -> str:
    with urllib.request.urlopen(f"http://{node.address}/.well-known/acme-challenge/{TOKEN}", timeout=10) as reply:
        return reply.read().decode().strip()


def pebble_status(fleet: FleetLab, serial: int) -> dict[str, t.Any]:
    assert fleet.lab is not None and fleet.lab.info is not None
    ctx = ssl.create_default_context(cafile=fleet.lab.info.acme_ca_path)
    url = f"{fleet.lab.info.pebble_management}/cert-status-by-serial/{serial:x}"
    with urllib.request.urlopen(url, context=ctx, timeout=10) as reply:
        return t.cast(dict[str, t.Any], json.load(reply))


def account_module(fleet: FleetLab, **args: t.Any) -> dict[str, t.Any]:
    """acme_account on the controller (ad hoc, localhost); ``failed`` from the status line."""
    assert fleet.lab is not None and fleet.lab.info is not None
    args = {"directory": fleet.lab.info.acme_directory, "ca_path": fleet.lab.info.acme_ca_path, **args}
    argv = [str(Path(sys.executable).parent / "ansible"), "localhost", "-o", "-m", "tlsops.haproxy_acme.acme_account",
            "-a", json.dumps(args)]
    proc = subprocess.run(argv, capture_output=True, text=True, env=fleet.env(), timeout=120, check=False)
    status, _, payload = proc.stdout.partition("=> ")
    if not payload:
        raise AssertionError(f"acme_account said nothing useful:\n{proc.stdout}{proc.stderr}")
    return {**json.loads(payload), "failed": "FAILED!" in status}


def node_sh(fleet: FleetLab, node: lab_nodes.Node, script: str) -> str:
    proc = lab_nodes.node_exec(fleet.state, node.name, ["sh", "-c", script], check=False)
    assert proc.returncode == 0, f"{script}: rc={proc.returncode}\n{proc.stdout}{proc.stderr}"
    return str(proc.stdout).strip()


def test_site_then_rollover_across_three_nodes(fleet: FleetLab, memo: dict[str, t.Any]) -> None:
    site = fleet.playbook("site")
    assert site.rc == 0, explain(site)
    thumbprint_before = challenge(fleet, fleet.nodes[0]).split(".", 1)[1]
    pids = fleet.pids()
    run = fleet.playbook("rollover")
    assert run.rc == 0, explain(run)
    assert fleet.pids() == pids, "HAProxy's master or worker PID changed on a node"
    key = Path(json.loads(fleet.site_vars.read_text())["haproxy_acme_account_key_path"])
    kept = sorted(key.parent.glob("account.key.*.old"))
    assert len(kept) == 1 and oct(kept[0].stat().st_mode & 0o777) == "0o600", kept
    new = account_module(fleet, account_key_path=str(key))
    assert new["status"] == "valid" and new["thumbprint"] != thumbprint_before and not new["changed"], new
    for node in fleet.nodes:
        assert challenge(fleet, node) == f"{TOKEN}.{new['thumbprint']}", node.name
    memo.update(pids=pids, thumbprint=new["thumbprint"], old=thumbprint_before, kept=kept[0], account=new["account_uri"])


def test_rollover_rerun_changes_nothing(fleet: FleetLab, memo: dict[str, t.Any]) -> None:
    run = fleet.playbook("rollover")
    assert run.rc == 0 and set(run.changed().values()) == {0}, explain(run)
    assert fleet.pids() == memo["pids"]


def test_a_forced_renew_is_validated_with_the_new_key_through_nodes_2_and_3(
        fleet: FleetLab, memo: dict[str, t.Any]) -> None:
    requests = [fleet.challenge_requests(n) for n in fleet.nodes]
    orders = fleet.orders()
    old = {c["name"]: fleet.tls_serial(fleet.nodes[0], c["name"]) for c in fleet.certs}
    run = fleet.playbook("renew", "-e", "haproxy_acme_force=true")
    assert run.rc == 0, explain(run)
    assert fleet.orders() == orders + len(fleet.certs), "one order per certificate, with the rolled-over account"
    # pebble reuses no authorization (the lab's PEBBLE_AUTHZREUSE=0): each order was validated
    # now, against the new thumbprint, and through nodes 2 and 3 only (DNS).
    first, second, third = (fleet.challenge_requests(n) - before for n, before in zip(fleet.nodes, requests))
    assert first == 0 and second > 0 and third > 0, (first, second, third)
    for cert in fleet.certs:
        serials = {fleet.tls_serial(n, cert["name"]) for n in fleet.nodes}
        assert len(serials) == 1 and serials != {old[cert["name"]]}, (cert["name"], serials, old)
    assert fleet.pids() == memo["pids"]


def test_the_old_key_registers_no_new_account(fleet: FleetLab, memo: dict[str, t.Any]) -> None:
    # The rollover retired it: its account is deactivated, so no run can use it again.
    old = account_module(fleet, account_key_path=str(memo["kept"]), terms_agreed=True)
    assert old.get("failed") and "deactivated" in old["msg"], old


def test_replace_new_serial_everywhere_then_revoked(fleet: FleetLab, memo: dict[str, t.Any]) -> None:
    name = fleet.certs[1]["name"]
    old = {n.name: fleet.tls_serial(n, name) for n in fleet.nodes}
    assert len(set(old.values())) == 1
    extra = ("-e", json.dumps({"haproxy_acme_replace": [name]}))
    first = fleet.playbook("replace", *extra)
    assert first.rc == 0 and "NOT revoked" in first.output, explain(first)
    new = {n.name: fleet.tls_serial(n, name) for n in fleet.nodes}
    assert len(set(new.values())) == 1 and set(new.values()) != set(old.values()), (old, new)
    assert pebble_status(fleet, next(iter(old.values())))["Status"] == "Valid"
    confirmed = fleet.playbook("replace", *extra, "-e", "haproxy_acme_revoke_confirmed=true")
    assert confirmed.rc == 0, explain(confirmed)
    assert {n.name: fleet.tls_serial(n, name) for n in fleet.nodes} == new, "a rerun ordered again"
    status = pebble_status(fleet, next(iter(old.values())))
    assert (status["Status"], status["Reason"]) == ("Revoked", 1), status
    assert fleet.pids() == memo["pids"]


def test_a_standalone_host_rolls_over_its_timer_jobs_account(fleet: FleetLab, memo: dict[str, t.Any]) -> None:
    assert fleet.lab is not None
    solo = fleet.nodes[2]
    fleet.lab.point_dns(SOLO, solo.address)
    common = json.loads(fleet.site_vars.read_text())
    del common["haproxy_acme_account_key_path"]
    solo_vars = fleet.workdir / "solo-vars.json"
    solo_vars.write_text(json.dumps({**common, "haproxy_acme_topology": "standalone",
                                     "haproxy_acme_certificates": [{"name": SOLO, "domains": [SOLO]}]}))
    limit = ("--limit", solo.name)
    site = fleet.playbook("site", *limit, vars_file=solo_vars)
    assert site.rc == 0, explain(site)
    # The timer's job reads the key the rollover moves.
    job = json.loads(node_sh(fleet, solo, "cat /etc/haproxy-acme/renew.json"))
    assert job["account_key_path"] == HOST_KEY, job
    key = solo.merged / HOST_KEY.lstrip("/")
    before = account_module(fleet, account_key_path=str(key))
    assert challenge(fleet, solo) == f"{TOKEN}.{before['thumbprint']}"
    pids = fleet.pids()[solo.name]
    serial = fleet.tls_serial(solo, SOLO)

    run = fleet.playbook("rollover", *limit, vars_file=solo_vars)
    assert run.rc == 0, explain(run)
    after = account_module(fleet, account_key_path=str(key))
    assert (after["account_uri"], after["changed"]) == (before["account_uri"], False), (before, after)
    assert after["thumbprint"] != before["thumbprint"]
    assert challenge(fleet, solo) == f"{TOKEN}.{after['thumbprint']}"
    kept = node_sh(fleet, solo, f"stat -c '%a %U:%G %n' {HOST_KEY}.*.old").splitlines()
    assert len(kept) == 1 and kept[0].startswith("600 acme:acme "), kept
    assert node_sh(fleet, solo, "systemctl is-active haproxy-acme-renew.timer") == "active"
    assert fleet.pids()[solo.name] == pids

    # The timer's own service, forced: it orders with the key in place, the new one (the
    # old one's account is deactivated), and hot-loads the new certificate.
    node_sh(fleet, solo, "echo 'HAPROXY_ACME_RENEW_ARGS=--force' > /etc/default/haproxy-acme-renew"
                         " && systemctl start haproxy-acme-renew.service; rc=$?;"
                         " rm -f /etc/default/haproxy-acme-renew; exit $rc")
    renewed = fleet.tls_serial(solo, SOLO)
    assert renewed != serial
    journal = node_sh(fleet, solo, "journalctl -u haproxy-acme-renew.service --no-pager -o cat")
    line = next(x for x in reversed(journal.splitlines()) if x.startswith(f"{SOLO}: "))
    found = re.search(r" serial=([0-9A-Fa-f:]+)", line)
    assert found and int(found.group(1).replace(":", ""), 16) == renewed, line
    assert fleet.pids()[solo.name] == pids, "HAProxy was reloaded or restarted"
