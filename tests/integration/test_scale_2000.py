# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""2,000 certificates in one haproxy_runtime_cert run, as Ansible runs a module, on the lab's HAProxy.

Correctness at scale, not time (bench/scale measures that; docs/large-hosts.md): every
certificate is served (``show ssl cert``), ``Used`` through the ``crt <dir>/`` bind, in
that directory's crt-list, on disk with the bundle's serial, and HAProxy was not
reloaded (its PID is unchanged). The bundles come from a staging directory by path
(``pem_src``), as on a host that ordered them; the test removes them again over the
Runtime API, so the lab's HAProxy ends as it began.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import typing as t
from pathlib import Path

from cryptography import x509

from tests.integration.haproxy_runtime_helpers import haproxy_pid, raw_cli, same_hex, served_serial
from tests.integration.scale_bundles import bundles
from tests.lab.lab import LabInfo

ROOT = Path(__file__).resolve().parents[2]
MODULE = "ansible_collections.tlsops.haproxy_acme.plugins.modules.haproxy_runtime_cert"
COUNT = 2000


def run_module(args: dict[str, t.Any], tmp_path: Path, label: str) -> dict[str, t.Any]:
    """The module in its own process (``python -m <module> <args file>``); its JSON result."""
    args_file = tmp_path / f"args-{label}.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "build" / "collections")}
    proc = subprocess.run([sys.executable, "-m", MODULE, str(args_file)], capture_output=True, text=True, env=env,
                          timeout=600, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return t.cast(dict[str, t.Any], json.loads(proc.stdout))


def serial(pem: bytes) -> str:
    return format(x509.load_pem_x509_certificate(pem).serial_number, "X")


def test_2000_certificates_deployed_through_the_module_process(lab: LabInfo, tmp_path: Path) -> None:
    domains = [f"c{i:04d}.scale2000.test" for i in range(COUNT)]
    made = bundles(domains)
    staging = tmp_path / "staging"
    staging.mkdir()
    cert_dir = Path(lab.lab_cert_dir)
    paths = [str(cert_dir / f"scale2000-{i:04d}.pem") for i in range(COUNT)]
    sources = [staging / f"{i:04d}.pem" for i in range(COUNT)]
    for source, pem in zip(sources, made):
        source.write_bytes(pem)
    pid = haproxy_pid(lab.lab_socket)
    items = [{"path": p, "pem_src": str(s)} for p, s in zip(paths, sources)]
    try:
        result = run_module({"socket": lab.lab_socket, "certificates": items}, tmp_path, "deploy")
        assert not result.get("failed"), result.get("msg")
        assert result["changed"]
        assert [c["action"] for c in result["certificates"]] == ["created"] * COUNT

        listing, members = raw_cli(lab.lab_socket, "show ssl cert", f"show ssl crt-list {cert_dir}", timeout=30)
        assert set(paths) <= set(listing.splitlines()), "not every certificate is loaded"
        listed = {line.split()[0] for line in members.splitlines() if line and not line.startswith("#")}
        assert set(paths) <= listed, f"not every certificate is in the crt-list {cert_dir}"

        details = raw_cli(lab.lab_socket, *(f"show ssl cert {p}" for p in paths), timeout=30)
        wrong = []
        for path, pem, detail in zip(paths, made, details):
            fields = dict(line.split(": ", 1) for line in detail.splitlines() if ": " in line)
            on_disk = Path(path).read_bytes()
            if fields.get("Status") != "Used" or not same_hex(fields.get("Serial"), serial(pem)):
                wrong.append(f"{path}: served {fields.get('Serial')} {fields.get('Status')}")
            elif not same_hex(serial(on_disk), serial(pem)):
                wrong.append(f"{path}: on disk {serial(on_disk)}, not {serial(pem)}")
        assert not wrong, f"{len(wrong)} wrong, first: {wrong[:3]}"
        for i in (0, COUNT // 2, COUNT - 1):  # and a TLS client gets it by its name
            assert same_hex(served_serial(lab.lab_https_port, domains[i]), serial(made[i]))
        assert haproxy_pid(lab.lab_socket) == pid, "HAProxy was reloaded or restarted"
    finally:  # leave the lab's HAProxy as it was: out of the crt-list, out of HAProxy, off the disk
        pipelined(lab.lab_socket, [f"del ssl crt-list {cert_dir} {p}" for p in paths])
        pipelined(lab.lab_socket, [f"del ssl cert {p}" for p in paths])
        for path in paths:
            Path(path).unlink(missing_ok=True)
    (listing,) = raw_cli(lab.lab_socket, "show ssl cert")
    assert not set(paths) & set(listing.splitlines())


def pipelined(path: str, commands: list[str], window: int = 200) -> None:
    """Commands without payload, ``window`` at a time on one prompt-mode connection; each reply is
    one line of text, then an empty line and the prompt."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(path)
        sock.sendall(b"prompt\n")
        buf = b""
        while not buf.endswith(b"\n> "):
            buf += sock.recv(65536)
        for start in range(0, len(commands), window):
            chunk = commands[start : start + window]
            sock.sendall("".join(f"{c}\n" for c in chunk).encode())
            buf = b""
            while buf.count(b"\n\n> ") < len(chunk):
                data = sock.recv(65536)
                assert data, "HAProxy closed the connection"
                buf += data
