# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fleet mode end to end: order once, answer anywhere, push everywhere.

Three booted nspawn nodes (systemd, Debian's HAProxy), this machine as the controller
(ansible-playbook, implicit localhost), pebble on the bridge with challtestsrv pointing
every name at node 2 or node 3, never at node 1 (the host run_once tasks run for).
Ten certificates served by all three nodes. The tests run in order, one scenario:

1. ``site`` (haproxy_acme_topology: fleet): exactly 10 orders in pebble's log; every
   node serves the same serial per name (TLS handshake with SNI from the host, and
   haproxy_runtime_cert_info); no HAProxy PID changed during certificate deployment;
   node 1's HAProxy logged no challenge request, nodes 2 and 3 did.
   The renew runs get the account key as content (as an AWX credential injects it);
   an inventory path given beside it is never used.
2. Nodes have no renewal timer and no acme user.
3. ``renew`` again: no order, changed=0, no PID changed.
4. Node 1 stopped, ``renew`` with force: nodes 2 and 3 get 10 new certificates, node 1
   is named (recap and summary), the report marks it unreachable.
5. Node 1 started again (it boots with the old certificates from its disk): ``renew``
   converges it, with no order and no PID changed.
6. Drift: node 1 serves an older copy of one certificate and node 3 lacks another; the
   report shows both; ``renew`` brings both to the newest copy without an order.
7. One order fails (its name resolves to no node): the other certificates still reach
   every node, and the run fails naming the one that did not.
8. Two forced ``renew`` runs started at the same time: both end with rc 0, every node
   serves the same serial per name, the newer of the two issued, and no PID changed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import typing as t
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.fleet_harness import CERT_DIR, FleetLab, Run, served_serials
from tests.lab.nodes import nodes as lab_nodes

pytestmark = [
    pytest.mark.nodes,
    pytest.mark.skipif(os.geteuid() != 0, reason="booting nodes needs root"),
    pytest.mark.skipif(not (shutil.which("systemd-nspawn") and shutil.which("debootstrap")),
                       reason="needs systemd-container and debootstrap"),
    pytest.mark.skipif(not (shutil.which("pebble") and shutil.which("pebble-challtestsrv")), reason="needs pebble"),
]

SET_NAME = "pytest-fleet"
CERTS = 10


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[FleetLab]:
    with FleetLab(tmp_path_factory.mktemp("fleet"), SET_NAME, nodes=3, certs=CERTS) as lab:
        yield lab


@pytest.fixture(scope="module")
def memo() -> dict[str, t.Any]:
    """What one step of the scenario leaves for the next."""
    return {}


def names(fleet: FleetLab) -> list[str]:
    return [c["name"] for c in fleet.certs]


def explain(run: Run) -> str:
    return f"rc={run.rc} recap={run.recap} summary={run.summary}\n{run.tail()}"


def assert_same_serial_everywhere(fleet: FleetLab, nodes: t.Sequence[str] | None = None) -> dict[str, int]:
    """Per certificate, the one serial every (named) node serves, by TLS and by the Runtime API."""
    wanted = [n for n in fleet.nodes if nodes is None or n.name in nodes]
    served = fleet.served()
    assert all(n.name in served for n in wanted), served.keys()
    serials: dict[str, int] = {}
    for cert in fleet.certs:
        by_tls = {n.name: {fleet.tls_serial(n, d) for d in cert["domains"]} for n in wanted}
        by_api = served_serials({n.name: served[n.name] for n in wanted}, cert["name"])
        values = {s for found in by_tls.values() for s in found} | set(by_api.values())
        assert len(values) == 1 and None not in values, (cert["name"], by_tls, by_api)
        serials[cert["name"]] = t.cast(int, values.pop())
    return serials


def test_site_orders_each_certificate_once(fleet: FleetLab, memo: dict[str, t.Any]) -> None:
    main_before = {n.name: fleet.main_pid(n) for n in fleet.nodes}
    run = fleet.playbook("site")
    memo["site_seconds"] = run.seconds
    assert run.rc == 0, explain(run)
    assert fleet.orders() == CERTS, "pebble's log must show exactly one order per certificate"
    assert run.summary is not None and run.summary["orders"] == CERTS and run.summary["not_answering"] == []
    assert {n: sorted(c) for n, c in run.summary["updated"].items()} == {n.name: sorted(names(fleet))
                                                                         for n in fleet.nodes}
    memo["serials"] = assert_same_serial_everywhere(fleet)
    # The CA validated against nodes 2 and 3 only (DNS), never the controller's first node.
    first, second, third = (fleet.challenge_requests(n) for n in fleet.nodes)
    assert first == 0 and second > 0 and third > 0, (first, second, third)
    # Certificates went in over the Runtime API: the worker that served before the push
    # serves after it (the config reload of a first set-up happens before, in the role).
    for node, (before, after) in run.summary["worker_pids"].items():
        assert before == after and before is not None, (node, before, after)
    assert {n.name: fleet.main_pid(n) for n in fleet.nodes} == main_before
    memo["old_c01"] = fleet.disk_bundle(fleet.nodes[0], names(fleet)[0])


def test_nodes_run_no_renewal_job_and_need_no_acme_user(fleet: FleetLab) -> None:
    for node in fleet.nodes:
        units = lab_nodes.node_exec(fleet.state, node.name, ["systemctl", "list-unit-files", "haproxy-acme*"],
                                    check=False)
        assert "0 unit files listed" in units.stdout, units.stdout
        acme = lab_nodes.node_exec(fleet.state, node.name, ["getent", "passwd", "acme"], check=False)
        assert acme.returncode != 0, acme.stdout
        assert not (node.merged / "usr/local/sbin/haproxy-acme-renew").exists()


def metrics(path: Path) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """The run's metrics file on the controller (haproxy_acme_metrics_path), read by Prometheus' own parser."""
    # Imported here: the Debian 13 lab node that collects this module has no prometheus_client.
    parser = pytest.importorskip("prometheus_client.parser")
    return {f.name: {tuple(sorted(s.labels.items())): s.value for s in f.samples}
            for f in parser.text_string_to_metric_families(path.read_text())}


def assert_no_key_material(run: Run) -> None:
    """Bundles travel node -> controller -> nodes; not a byte of a key may reach the output."""
    assert "PRIVATE KEY" not in run.output, "key material in ansible-playbook's output"


def test_second_run_orders_nothing_and_changes_nothing(fleet: FleetLab, memo: dict[str, t.Any]) -> None:
    pids = fleet.pids()
    # -vvv shows every module's arguments and results: the fetched bundles must stay hidden.
    prom = fleet.workdir / "haproxy_acme.prom"
    run = fleet.playbook("renew", "-vvv", "-e", f"haproxy_acme_metrics_path={prom}")
    assert run.rc == 0, explain(run)
    assert_no_key_material(run)
    found = metrics(prom)  # written, yet no change (changed=0 below)
    assert found["haproxy_acme_renewal_run_success"] == {(("topology", "fleet"),): 1.0}
    assert set(found["haproxy_acme_certificate_in_sync"].values()) == {1.0}
    assert len(found["haproxy_acme_certificate_in_sync"]) == CERTS * len(fleet.nodes)
    assert fleet.orders() == CERTS
    assert set(run.changed().values()) == {0}, explain(run)
    assert run.summary is not None and run.summary["orders"] == 0 and run.summary["updated"] == {}
    # Decided from what the nodes' files say of themselves (bundle_facts): no bundle was
    # copied to the controller, none pushed, and no node read a second time.
    for task in ("Copy the newest bundles", "Make every node serve", "after the push"):
        printed = run.task_output(task)
        assert "ok: [" not in printed and "changed: [" not in printed and "included: " not in printed, (task, printed)
    assert all(after is None for _, after in run.summary["worker_pids"].values()), run.summary["worker_pids"]
    assert fleet.pids() == pids
    assert assert_same_serial_everywhere(fleet) == memo["serials"]
    assert not fleet.unused_key_path.exists(), "the credential's key content must win over an inventory path"


def test_a_stopped_node_is_named_and_the_others_are_renewed(fleet: FleetLab, memo: dict[str, t.Any]) -> None:
    first, others = fleet.nodes[0], fleet.nodes[1:]
    lab_nodes.stop_node(fleet.state, first.name)
    pids = {n.name: (fleet.main_pid(n), fleet.worker_pid(n)) for n in others}
    report = fleet.workdir / "report-stopped"
    prom = fleet.workdir / "haproxy_acme.prom"
    run = fleet.playbook("renew", "-vvv", "-e", "haproxy_acme_force=true", "-e", "haproxy_acme_report=true",
                         "-e", f"haproxy_acme_report_dir={report}", "-e", f"haproxy_acme_metrics_path={prom}")
    assert run.rc == 4, explain(run)  # ansible-playbook's code for "a host was unreachable"
    found = metrics(prom)
    assert found["haproxy_acme_renewal_run_success"] == {(("topology", "fleet"),): 0.0}
    assert found["haproxy_acme_node_answered"] == {(("node", n.name),): float(n is not first) for n in fleet.nodes}
    assert {dict(k)["name"] for k, v in found["haproxy_acme_certificate_last_result"].items()
            if dict(k)["result"] == "renewed" and v == 1} == set(names(fleet))
    expiry = found["haproxy_acme_certificate_not_after_timestamp_seconds"]
    assert {dict(k)["node"] for k in expiry} == {n.name for n in others} and len(expiry) == CERTS * len(others)
    assert_no_key_material(run)  # new bundles pushed as pem_content
    assert run.recap[first.name]["unreachable"] == 1, explain(run)
    assert run.summary is not None and run.summary["not_answering"] == [first.name], explain(run)
    assert run.summary["orders"] == CERTS and fleet.orders() == 2 * CERTS
    assert sorted(run.summary["updated"]) == [n.name for n in others]
    serials = assert_same_serial_everywhere(fleet, [n.name for n in others])
    assert all(serials[c] != memo["serials"][c] for c in serials)
    assert {n.name: (fleet.main_pid(n), fleet.worker_pid(n)) for n in others} == pids
    markdown = (report / "haproxy-acme-report.md").read_text()
    assert markdown.count(f"| {first.name} | unreachable | ? | - | - | - | ") == CERTS, markdown
    assert '<table id="certificates">' in (report / "haproxy-acme-report.html").read_text()
    data = json.loads((report / "haproxy-acme-report.json").read_text())
    assert data["unreachable"] == [first.name] and data["counts"]["states"]["unreachable"] == 1, data["counts"]
    assert [r["node"] for r in data["rows"][-CERTS:]] == [first.name] * CERTS  # the unknown last
    memo["serials"] = serials


def test_a_restarted_node_converges_without_an_order(fleet: FleetLab, memo: dict[str, t.Any]) -> None:
    first = fleet.nodes[0]
    lab_nodes.start_node(fleet.state, first.name)
    # It boots with what its disk held: the certificates of the first run.
    assert fleet.tls_serial(first, names(fleet)[1]) != memo["serials"][names(fleet)[1]]
    pids = fleet.pids()
    run = fleet.playbook("renew")
    assert run.rc == 0, explain(run)
    assert fleet.orders() == 2 * CERTS
    assert run.summary is not None and run.summary["orders"] == 0
    assert {n: sorted(c) for n, c in run.summary["updated"].items()} == {first.name: sorted(names(fleet))}
    assert assert_same_serial_everywhere(fleet) == memo["serials"]
    assert fleet.pids() == pids


def test_drift_is_reported_and_repaired_without_an_order(fleet: FleetLab, memo: dict[str, t.Any]) -> None:
    first, third = fleet.nodes[0], fleet.nodes[2]
    older, missing = names(fleet)[0], names(fleet)[1]
    # Node 1 (the host run_once tasks run for) serves an older copy of one certificate,
    # node 3 lacks another one entirely.
    (first.merged / "root/old.pem").write_text(memo["old_c01"])
    # The module never replaces a newer certificate with an older one: go back by removing it first.
    gone = fleet.module(first.name, "tlsops.haproxy_acme.haproxy_runtime_cert",
                        {"path": f"{CERT_DIR}/{older}.pem", "state": "absent"})
    assert gone["changed"], gone
    pushed = fleet.module(first.name, "tlsops.haproxy_acme.haproxy_runtime_cert",
                          {"path": f"{CERT_DIR}/{older}.pem", "pem_src": "/root/old.pem", "group": "haproxy"})
    assert pushed["changed"], pushed
    removed = fleet.module(third.name, "tlsops.haproxy_acme.haproxy_runtime_cert",
                           {"path": f"{CERT_DIR}/{missing}.pem", "state": "absent"})
    assert removed["changed"], removed

    report = fleet.workdir / "report-drift"
    run = fleet.playbook("report", "-e", f"haproxy_acme_report_dir={report}")
    assert run.rc == 0, explain(run)
    markdown = (report / "haproxy-acme-report.md").read_text()
    assert f"| {older} | {first.name} | older | yes | " in markdown, markdown
    assert f"| {missing} | {third.name} | missing | yes | - | - | - | " in markdown, markdown
    assert f"Certificates with drift: {older}, {missing}" in markdown, markdown
    data = json.loads((report / "haproxy-acme-report.json").read_text())
    assert (data["rows"][0]["certificate"], data["rows"][0]["node"]) == (missing, third.name)  # most urgent first
    assert data["counts"]["nodes"] == 3 and data["counts"]["states"]["older"] == data["counts"]["states"]["missing"] == 1
    older_row = next(r for r in data["rows"] if r["state"] == "older")
    assert int(older_row["reference_serial"], 16) == memo["serials"][older] != int(older_row["serial"], 16), older_row
    pids = {n.name: int(fleet.worker_pid(n)) for n in fleet.nodes}
    assert {n["name"]: n["worker_pid"] for n in data["nodes"]} == pids, data["nodes"]
    assert all(n["haproxy_version"] for n in data["nodes"]), data["nodes"]
    html = (report / "haproxy-acme-report.html").read_text()
    assert 'class="s-older' in html and 'class="s-missing' in html
    assert "<script" not in html and "src=" not in html and "<link" not in html  # self-contained

    pids = fleet.pids()
    run = fleet.playbook("renew")
    assert run.rc == 0, explain(run)
    assert fleet.orders() == 2 * CERTS, "drift is repaired from the fleet's newest copy, not by ordering"
    assert run.summary is not None
    assert run.summary["updated"] == {first.name: [older], third.name: [missing]}, explain(run)
    assert assert_same_serial_everywhere(fleet) == memo["serials"]
    assert fleet.pids() == pids
    assert Path(third.merged / CERT_DIR.lstrip("/") / f"{missing}.pem").exists()


def test_a_failed_order_does_not_hold_back_the_others(fleet: FleetLab, memo: dict[str, t.Any]) -> None:
    broken = names(fleet)[2]
    fleet.repoint_dns(broken, f"{fleet.nodes[0].address.rsplit('.', 1)[0]}.250")  # no node there
    before = fleet.orders()
    run = fleet.playbook("renew", "-e", "haproxy_acme_force=true")
    assert run.rc == 2, explain(run)
    assert f"certificate '{broken}'" in run.output and "Not ordered (the others were pushed)" in run.output, explain(run)
    assert run.summary is not None and run.summary["orders"] == CERTS - 1
    actions = {c["name"]: c["action"] for c in run.summary["certificates"]}
    assert actions.pop(broken) == "failed" and set(actions.values()) == {"renewed"}, actions
    assert fleet.orders() == before + CERTS  # the failed one was ordered too; it failed at validation
    serials = assert_same_serial_everywhere(fleet)
    assert serials[broken] == memo["serials"][broken]
    assert all(serials[c] != memo["serials"][c] for c in serials if c != broken)


def issued(run: Run) -> dict[str, dict[str, t.Any]]:
    """The order task's result per certificate (``-v`` prints it): {name: {serial, not_before, not_after, ...}}."""
    found = re.search(r"^TASK \[(?:[\w.]+ : )?Issue or renew what is due", run.output, re.M)
    assert found is not None, run.tail()
    lines = run.output[found.start():].splitlines()[1:]
    lines = lines[:next((i for i, line in enumerate(lines) if line.startswith("TASK [")), len(lines))]
    start = next(i for i, line in enumerate(lines) if re.match(r"^(ok|changed): \[.*\] => \{", line))
    head = lines[start].split(" => ", 1)[1]
    if head == "{":  # indented over several lines
        end = next(i for i in range(start, len(lines)) if lines[i] == "}")
        head = "\n".join(["{", *lines[start + 1:end], "}"])
    return {c["name"]: c for c in json.loads(head)["certificates"]}


def newest(*copies: dict[str, t.Any]) -> int:
    """The serial of the newest copy as haproxy_runtime_cert orders them: notBefore, notAfter, serial."""
    def age(c: dict[str, t.Any]) -> tuple[dt.datetime, dt.datetime, int]:
        return (dt.datetime.fromisoformat(c["not_before"].replace("Z", "+00:00")),
                dt.datetime.fromisoformat(c["not_after"].replace("Z", "+00:00")), int(c["serial"].replace(":", ""), 16))
    return age(max(copies, key=age))[2]


def test_two_renews_at_once_end_on_the_newest_certificate(fleet: FleetLab, memo: dict[str, t.Any]) -> None:
    """Two forced runs order every certificate twice, their pushes interleave; every node ends on the newer one."""
    broken = names(fleet)[2]
    fleet.repoint_dns(broken, fleet.nodes[1].address)  # the last test sent it nowhere; index 2 -> node 2
    pids = fleet.pids()
    before = fleet.orders()
    with ThreadPoolExecutor(max_workers=2) as pool:
        jobs = [pool.submit(fleet.playbook, "renew", "-v", "-e", "haproxy_acme_force=true") for _ in range(2)]
        runs = [job.result() for job in jobs]
    for run in runs:
        assert run.rc == 0, explain(run)
        assert_no_key_material(run)
        assert run.summary is not None and run.summary["orders"] == CERTS, explain(run)
    assert fleet.orders() == before + 2 * CERTS
    first, second = (issued(run) for run in runs)
    assert all(int(first[c]["serial"], 16) != int(second[c]["serial"], 16) for c in names(fleet))
    serials = assert_same_serial_everywhere(fleet)
    assert serials == {c: newest(first[c], second[c]) for c in names(fleet)}, (serials, first, second)
    assert fleet.pids() == pids
    # The push that comes last with the older copy keeps what the node serves, on disk too.
    node, cert = fleet.nodes[0], names(fleet)[0]
    on_disk = fleet.disk_bundle(node, cert)
    (node.merged / "root/older.pem").write_text(memo["old_c01"])
    kept = fleet.module(node.name, "tlsops.haproxy_acme.haproxy_runtime_cert",
                        {"path": f"{CERT_DIR}/{cert}.pem", "pem_src": "/root/older.pem", "group": "haproxy"})
    assert not kept["changed"] and kept["action"] == "unchanged", kept
    assert "is already served on /run/haproxy/admin.sock; kept" in kept["reason"], kept["reason"]
    assert fleet.disk_bundle(node, cert) == on_disk and fleet.tls_serial(node, cert) == serials[cert]
    # One more run changes nothing: the nodes agree, and nothing older is pushed over what they serve.
    run = fleet.playbook("renew")
    assert run.rc == 0 and set(run.changed().values()) == {0}, explain(run)
    assert assert_same_serial_everywhere(fleet) == serials
