# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A fleet lab: booted nspawn nodes running HAProxy, pebble on the host's bridge address,
and this machine as the Ansible controller (implicit localhost).

Used by tests/integration/test_fleet.py and bench/fleet. Every figure it reports comes
from outside our code: orders from pebble's own log, serials from TLS handshakes with
SNI against each node, worker PIDs from HAProxy's ``show info`` and systemd's MainPID.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import typing as t
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from tests.lab.lab import Lab, count_orders
from tests.lab.nodes import nodes as lab_nodes

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / "build" / "collections"
PLAYBOOKS = ROOT / "playbooks"
CERT_DIR = "/etc/haproxy/certs"
_RECAP = re.compile(
    r"^(?P<host>\S+)\s+: ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)


def certificates(count: int) -> list[dict[str, t.Any]]:
    """``count`` certificates; the first has a second name, to show SANs travel too."""
    certs: list[dict[str, t.Any]] = [
        {"name": f"c{i:02d}.fleet.test", "domains": [f"c{i:02d}.fleet.test"]} for i in range(1, count + 1)
    ]
    certs[0]["domains"] = ["c01.fleet.test", "www.c01.fleet.test"]
    return certs


@dataclass
class Run:
    """One ansible-playbook run: exit code, play recap, the fleet summary, wall time."""

    rc: int
    output: str
    seconds: float
    recap: dict[str, dict[str, int]] = field(default_factory=dict)
    summary: dict[str, t.Any] | None = None
    tasks: list[tuple[str, float]] = field(default_factory=list)  # (task banner, seconds until the next one)

    def task_seconds(self, name: str) -> float:
        """Wall time of the task(s) whose banner holds ``name`` (the output is streamed and timed)."""
        return sum(seconds for banner, seconds in self.tasks if name in banner)

    def changed(self) -> dict[str, int]:
        return {host: stats["changed"] for host, stats in self.recap.items()}

    def task_output(self, name: str) -> str:
        """What the task(s) whose banner holds ``name`` printed, banners left out."""
        parts, keep = [], False
        for line in self.output.splitlines():
            if line.startswith(("TASK [", "RUNNING HANDLER [", "PLAY RECAP", "PLAY [")):
                keep = name in line
            elif keep:
                parts.append(line)
        return "\n".join(parts)

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


def parse_run(rc: int, output: str, seconds: float) -> Run:
    run = Run(rc, output, seconds)
    for match in _RECAP.finditer(output):
        run.recap[match.group("host")] = {k: int(v) for k, v in match.groupdict().items() if k != "host"}
    run.summary = _summary(output)
    return run


def _summary(output: str) -> dict[str, t.Any] | None:
    """The ``_haproxy_acme_summary`` the play prints (JSON result format)."""
    # Role tasks print as "TASK [<role> : <name>]".
    found = re.search(r"^TASK \[(?:[\w.]+ : )?Show the summary\]", output, re.M)
    if found is None:
        return None
    start = found.start()
    lines = output[start:].splitlines()
    for index, line in enumerate(lines):
        if line.startswith("ok: [") and line.endswith("=> {"):
            body = ["{"]
            for more in lines[index + 1 :]:
                body.append(more)
                if more == "}":
                    break
            return dict(json.loads("\n".join(body))["_haproxy_acme_summary"])
    return None


class FleetLab:
    """``with FleetLab(workdir, "fleet", nodes=3, certs=10) as fleet: fleet.playbook("site")``."""

    def __init__(self, workdir: Path, set_name: str, nodes: int = 3, certs: int = 10) -> None:
        self.workdir = Path(workdir)
        self.set_name = set_name
        self.count = nodes
        self.certs = certificates(certs)
        self.state = self.workdir / "nodes"
        self.nodeset: lab_nodes.NodeSet | None = None
        self.lab: Lab | None = None

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> FleetLab:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.nodeset = lab_nodes.up(self.set_name, self.state, count=self.count)
        second = self.nodeset.nodes[1].address
        # pebble on the bridge; its validator connects to port 80 of whatever
        # challtestsrv answers: never the first node (the controller's run_once host).
        self.lab = Lab(self.workdir / "pebble", listen=self.nodeset.host_address, dns_answer=second,
                       validation_port=80, haproxy=False)
        self.lab.start()
        last = self.nodeset.nodes[-1].address
        for index, cert in enumerate(self.certs):
            for domain in cert["domains"]:
                self.lab.point_dns(domain, last if index % 2 else second)
        self._write_vars()

    def stop(self) -> None:
        if self.lab is not None:
            self.lab.stop()
        if self.state.exists():
            lab_nodes.down(self.state)

    def _write_vars(self) -> None:
        assert self.lab is not None and self.lab.info is not None
        info = self.lab.info
        common = {
            "haproxy_acme_hosts": "nodes",
            "haproxy_acme_topology": "fleet",
            "haproxy_acme_directory": info.acme_directory,
            "haproxy_acme_ca_path": info.acme_ca_path,
            "haproxy_acme_terms_agreed": True,
            "haproxy_acme_email": "ops@fleet.test",
            "haproxy_acme_certificates": self.certs,
        }
        # site: the account key as a file on the controller; renew: its content, as an
        # AWX credential injects it (extra vars), so the controller needs no file at all.
        # The content wins over a path left in the inventory: that path is never created.
        self.site_vars = self.workdir / "site-vars.json"
        self.site_vars.write_text(json.dumps({**common, "haproxy_acme_account_key_path": info.lab_account_key_path}))
        self.renew_vars = self.workdir / "renew-vars.json"
        key = Path(info.lab_account_key_path).read_text()
        self.unused_key_path = self.workdir / "inventory-path-unused.key"
        self.renew_vars.write_text(json.dumps({**common, "haproxy_acme_account_key_content": key,
                                               "haproxy_acme_account_key_path": str(self.unused_key_path)}))
        os.chmod(self.renew_vars, 0o600)

    def repoint_dns(self, host: str, address: str) -> None:
        """Make challtestsrv answer only ``address`` for ``host`` (``/add-a`` alone adds one)."""
        assert self.lab is not None and self.lab.info is not None
        for path, body in (("/clear-a", {"host": host}), ("/add-a", {"host": host, "addresses": [address]})):
            request = urllib.request.Request(self.lab.info.challtestsrv_management + path,
                                             data=json.dumps(body).encode(), method="POST")
            urllib.request.urlopen(request, timeout=10).read()

    # -------------------------------------------------------------- ansible

    @property
    def inventory(self) -> Path:
        return self.state / "inventory.yml"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "false",
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
            "ANSIBLE_PIPELINING": "true",
            "ANSIBLE_FORKS": "10",
        }

    def playbook(self, name: str, *extra: str, vars_file: Path | None = None) -> Run:
        """Run playbooks/<name>.yml against the nodes; the controller is implicit localhost."""
        if vars_file is None:
            vars_file = self.site_vars if name == "site" else self.renew_vars
        argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(self.inventory),
                "-e", f"@{vars_file}", *extra, str(PLAYBOOKS / f"{name}.yml")]
        started = time.monotonic()
        lines: list[str] = []
        banners: list[tuple[str, float]] = []
        # In the work directory: what a playbook keeps relative to it (the replace playbook's
        # ./haproxy-acme-incident) stays out of the checkout.
        with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**self.env(), "PWD": str(self.workdir)}, cwd=self.workdir) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if line.startswith(("TASK [", "RUNNING HANDLER [", "PLAY RECAP")):
                    banners.append((line.strip(), time.monotonic()))
            rc = proc.wait(timeout=600)
        run = parse_run(rc, "".join(lines), time.monotonic() - started)
        run.tasks = [(b, nxt - at) for (b, at), (_, nxt) in zip(banners, banners[1:])]
        return run

    def module(self, host: str, module: str, args: dict[str, t.Any]) -> dict[str, t.Any]:
        """One ad-hoc module run on one node; its JSON result."""
        argv = [str(Path(sys.executable).parent / "ansible"), "-i", str(self.inventory), host, "-o",
                "-m", module, "-a", json.dumps(args)]
        proc = subprocess.run(argv, capture_output=True, text=True, env=self.env(), timeout=120, check=False)
        _, _, payload = proc.stdout.partition("=> ")
        if not payload:
            raise AssertionError(f"ansible {module} on {host} said nothing useful:\n{proc.stdout}{proc.stderr}")
        return dict(json.loads(payload))

    def served(self) -> dict[str, dict[str, t.Any]]:
        """haproxy_runtime_cert_info on every node (ad hoc): {node: result}."""
        argv = [str(Path(sys.executable).parent / "ansible"), "-i", str(self.inventory), "nodes", "-o",
                "-m", "tlsops.haproxy_acme.haproxy_runtime_cert_info"]
        proc = subprocess.run(argv, capture_output=True, text=True, env=self.env(), timeout=120, check=False)
        results = {}
        for line in proc.stdout.splitlines():
            host, sep, payload = line.partition(" | SUCCESS => ")
            if sep:
                results[host] = json.loads(payload)
        return results

    # ---------------------------------------------------------- observation

    @property
    def nodes(self) -> list[lab_nodes.Node]:
        assert self.nodeset is not None
        return self.nodeset.nodes

    def orders(self) -> int:
        """Orders pebble created so far, from its own log."""
        assert self.lab is not None
        return count_orders(self.lab.pebble_log())

    def tls_serial(self, node: lab_nodes.Node, name: str, timeout: float = 5.0) -> int:
        """Serial of the leaf a node presents for SNI ``name``, verified against pebble's root."""
        assert self.lab is not None and self.lab.info is not None
        # HAProxy sends leaf + intermediate; pebble's root closes the chain.
        ctx = ssl.create_default_context(cafile=self.lab.info.pebble_root_path)
        with socket.create_connection((node.address, 443), timeout=timeout) as raw, \
                ctx.wrap_socket(raw, server_hostname=name) as tls:
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        return int(x509.load_der_x509_certificate(der).serial_number)

    def main_pid(self, node: lab_nodes.Node) -> str:
        proc = lab_nodes.node_exec(self.state, node.name, ["systemctl", "show", "--property", "MainPID", "--value",
                                                           "haproxy"])
        return proc.stdout.strip()

    def worker_pid(self, node: lab_nodes.Node) -> str:
        """``Pid`` of ``show info`` on the node's stats socket: the worker, which a reload replaces."""
        proc = lab_nodes.node_exec(self.state, node.name,
                                   ["sh", "-c", "echo 'show info' | socat stdio /run/haproxy/admin.sock"])
        for line in proc.stdout.splitlines():
            if line.startswith("Pid:"):
                return line.split(":", 1)[1].strip()
        raise AssertionError(f"no Pid in show info of {node.name}: {proc.stdout!r}")

    def pids(self) -> dict[str, tuple[str, str]]:
        """(MainPID, worker Pid) per running node."""
        return {n.name: (self.main_pid(n), self.worker_pid(n)) for n in self.nodes}

    def challenge_requests(self, node: lab_nodes.Node) -> int:
        """HTTP-01 requests the node's HAProxy logged (option httplog, to journald)."""
        proc = lab_nodes.node_exec(self.state, node.name, ["journalctl", "--no-pager", "-o", "cat", "-t", "haproxy"],
                                   check=False)
        return sum(1 for line in proc.stdout.splitlines() if "/.well-known/acme-challenge/" in line)

    def disk_bundle(self, node: lab_nodes.Node, cert: str) -> str:
        return (node.merged / CERT_DIR.lstrip("/") / f"{cert}.pem").read_text()


def served_serials(served: dict[str, dict[str, t.Any]], cert: str) -> dict[str, int | None]:
    """{node: serial as int} of one certificate, from haproxy_runtime_cert_info results."""
    path = f"{CERT_DIR}/{cert}.pem"
    out: dict[str, int | None] = {}
    for host, result in served.items():
        entry = next((c for c in result["certificates"] if c["path"] == path and c["status"] == "Used"), None)
        out[host] = int(entry["serial"], 16) if entry and entry["serial"] else None
    return out
