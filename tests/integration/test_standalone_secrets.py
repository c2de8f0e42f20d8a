# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Standalone ``site`` on booted hosts.

* Secrets: ``site`` and ``renew`` at ``-vvv --diff``, and the timer job's journal, hold no
  byte of a private key. The keys searched for are the host's own: the account key and
  every bundle's key, read from the node's disk after the runs. Each base64 line of them,
  and the PEM markers, must be absent from all the output.
* Renamed user and group: on the other node, ``site`` with an ACME user other than
  ``acme`` and a HAProxy group other than ``haproxy`` serves its certificate, gives every
  file to that user and group, and the timer job runs as that user.
"""

from __future__ import annotations

import json
import re
import subprocess
import typing as t
from pathlib import Path

import pytest
from cryptography import x509

from tests.integration.fleet_harness import CERT_DIR, FleetLab, Run
from tests.lab.nodes import nodes as lab_nodes

pytestmark = pytest.mark.nodes

ACCOUNT_KEY = "/var/lib/acme/account/account.key"
METRICS = "/var/lib/prometheus/node-exporter/haproxy_acme.prom"  # renewal_timer_metrics_path's default


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[FleetLab]:
    # Two nodes because the harness points every name at the second one; only it runs.
    with FleetLab(tmp_path_factory.mktemp("secrets"), "secrets", nodes=2, certs=2) as lab:
        assert lab.lab is not None and lab.lab.info is not None
        info = lab.lab.info
        vars_file = lab.workdir / "standalone-vars.json"
        vars_file.write_text(json.dumps({
            "haproxy_acme_hosts": "nodes", "haproxy_acme_topology": "standalone",
            "haproxy_acme_directory": info.acme_directory, "haproxy_acme_ca_path": info.acme_ca_path,
            "haproxy_acme_terms_agreed": True, "haproxy_acme_email": "ops@secrets.test",
            "haproxy_acme_certificates": lab.certs,
        }))
        lab.site_vars = lab.renew_vars = vars_file
        yield lab


def explain(run: Run) -> str:
    return f"rc={run.rc} recap={run.recap}\n{run.tail()}"


def forced_timer_run(lab: FleetLab, node: str) -> subprocess.CompletedProcess[str]:
    """One run of the timer's own service with ``--force``; it must renew. Its journal is in stdout."""
    job = lab_nodes.node_exec(
        lab.state, node,
        ["sh", "-c", "echo 'HAPROXY_ACME_RENEW_ARGS=--force' > /etc/default/haproxy-acme-renew"
                     " && systemctl start haproxy-acme-renew.service; rc=$?; rm -f /etc/default/haproxy-acme-renew;"
                     " journalctl -u haproxy-acme-renew.service --no-pager -o cat; exit $rc"], check=False)
    assert job.returncode == 0, job.stdout + job.stderr
    assert "renewed" in job.stdout, job.stdout
    return job


def _key_lines(pem: str) -> list[str]:
    """The base64 lines of every PRIVATE KEY block."""
    lines: list[str] = []
    for block in re.findall(r"-----BEGIN [A-Z ]*PRIVATE KEY-----(.+?)-----END", pem, re.DOTALL):
        lines += [line.strip() for line in block.split() if len(line.strip()) >= 16]
    return lines


def test_no_key_material_in_output_results_diffs_or_the_journal(standalone: FleetLab) -> None:
    node = standalone.nodes[1]
    limit = ("--limit", node.name)
    outputs = {}
    site = standalone.playbook("site", "-vvv", "--diff", *limit)
    assert site.rc == 0, explain(site)
    outputs["site -vvv --diff"] = site.output
    renew = standalone.playbook("renew", "-vvv", "--diff", "-e", "haproxy_acme_force=true", *limit)
    assert renew.rc == 0, explain(renew)
    outputs["renew -vvv --diff (forced)"] = renew.output
    job = forced_timer_run(standalone, node.name)
    outputs["the timer job's journal"] = job.stdout + job.stderr

    root = node.merged
    # The sandboxed service (the ACME user, ProtectSystem=strict) wrote its metrics where
    # Debian's node_exporter reads them (docs/metrics.md).
    prom = root / METRICS.lstrip("/")
    outputs["the job's metrics"] = prom.read_text()
    assert oct(prom.stat().st_mode & 0o7777) == "0o644" and oct(prom.parent.stat().st_mode & 0o7777) == "0o1775"
    # Imported here: the Debian 13 lab node that collects this module has no prometheus_client.
    parser = pytest.importorskip("prometheus_client.parser")
    found = {f.name: {tuple(sorted(s.labels.items())): s.value for s in f.samples}
             for f in parser.text_string_to_metric_families(outputs["the job's metrics"])}
    assert found["haproxy_acme_renewal_run_success"] == {(("topology", "standalone"),): 1.0}, outputs["the job's metrics"]
    assert {dict(k)["name"] for k, v in found["haproxy_acme_certificate_last_result"].items()
            if dict(k)["result"] == "renewed" and v == 1} == {c["name"] for c in standalone.certs}
    secrets = _key_lines((root / ACCOUNT_KEY.lstrip("/")).read_text())
    for cert in standalone.certs:
        secrets += _key_lines((root / CERT_DIR.lstrip("/") / f"{cert['name']}.pem").read_text())
    assert len(secrets) > 4, "no key found on the node to look for"
    for where, text in outputs.items():
        assert "PRIVATE KEY" not in text, f"a PEM key marker in {where}"
        leaked = [line for line in secrets if line in text]
        assert not leaked, f"{len(leaked)} base64 lines of a private key in {where}"
    # The runs did show their results: the check above looked at real output.
    assert "serial" in outputs["renew -vvv --diff (forced)"] and "renewed" in outputs["renew -vvv --diff (forced)"]
    assert Path(root / CERT_DIR.lstrip("/")).is_dir()


# The roles' variables that name the user and the groups (acme_user, haproxy), renamed.
RENAMED = {"acme_user_name": "certbot2", "acme_user_group": "certbot2", "haproxy_group": "lb"}
RENAMED_CERT = {"name": "renamed.test", "domains": ["renamed.test", "www.renamed.test"]}


def _serial(pem: str) -> int:
    return int(x509.load_pem_x509_certificate(pem.encode()).serial_number)


def _stat(lab: FleetLab, node: str, *paths: str) -> dict[str, str]:
    """{path: "owner:group mode"} inside the node."""
    proc = lab_nodes.node_exec(lab.state, node, ["stat", "-c", "%n %U:%G %a", *paths])
    return {path: rest for path, _, rest in (line.partition(" ") for line in proc.stdout.splitlines())}


def test_site_with_a_renamed_acme_user_and_haproxy_group(standalone: FleetLab) -> None:
    lab, node = standalone, standalone.nodes[0]
    assert lab.lab is not None
    for domain in RENAMED_CERT["domains"]:
        lab.repoint_dns(domain, node.address)
    vars_file = lab.workdir / "renamed-vars.json"
    vars_file.write_text(json.dumps({**json.loads(lab.site_vars.read_text()), **RENAMED,
                                     "haproxy_acme_certificates": [RENAMED_CERT]}))
    site = lab.playbook("site", "--limit", node.name, vars_file=vars_file)
    assert site.rc == 0, explain(site)

    bundle = f"{CERT_DIR}/{RENAMED_CERT['name']}.pem"
    issued = _serial((node.merged / bundle.lstrip("/")).read_text())
    for domain in RENAMED_CERT["domains"]:
        assert lab.tls_serial(node, domain) == issued, domain
    assert _stat(lab, node.name, ACCOUNT_KEY, bundle, CERT_DIR, "/run/haproxy/admin.sock",
                 "/etc/haproxy-acme/renew.json", "/etc/haproxy/haproxy.cfg") == {
        ACCOUNT_KEY: "certbot2:certbot2 600",
        bundle: "certbot2:lb 640",
        CERT_DIR: "haproxy:lb 2770",
        "/run/haproxy/admin.sock": "root:lb 660",
        "/etc/haproxy-acme/renew.json": "root:certbot2 640",
        "/etc/haproxy/haproxy.cfg": "root:lb 640",
    }
    groups = lab_nodes.node_exec(lab.state, node.name, ["id", "-nG", "certbot2"]).stdout.split()
    assert groups == ["certbot2", "lb"], groups
    assert not lab_nodes.node_exec(lab.state, node.name, ["getent", "passwd", "acme"], check=False).stdout

    unit = lab_nodes.node_exec(lab.state, node.name, [
        "systemctl", "show", "--property", "User,Group,SupplementaryGroups", "haproxy-acme-renew.service"])
    assert sorted(unit.stdout.split()) == ["Group=certbot2", "SupplementaryGroups=lb", "User=certbot2"], unit.stdout
    # The timer's own service, forced: it renews as certbot2, and HAProxy serves the new copy.
    forced_timer_run(lab, node.name)
    renewed = _serial((node.merged / bundle.lstrip("/")).read_text())
    assert renewed != issued
    assert lab.tls_serial(node, RENAMED_CERT["domains"][0]) == renewed
    assert _stat(lab, node.name, bundle) == {bundle: "certbot2:lb 640"}
