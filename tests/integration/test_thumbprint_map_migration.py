# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A host on the setenv form of the challenge rule moves to the thumbprint map with one
reload, the one the haproxy role's handler asks for; after that, a new thumbprint never
reloads HAProxy.

A real HAProxy in master-worker mode (``-W``, as Debian's unit runs it) starts from a
configuration with ``setenv ACCOUNT_THUMBPRINT``. The role (ansible-playbook, as in
test_ip_certificates.py, without package or service) writes the map and the new
``haproxy.cfg``; its handler is notified, and the test does what the handler's service
reload does (``SIGUSR2`` to the master). The master CLI counts the reloads; the worker's
PID changes on each one. A second role run with another thumbprint changes it over the
Runtime API only: no handler, the same worker.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import typing as t
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.integration.haproxy_runtime_helpers import haproxy_pid, raw_cli
from tests.integration.test_acme_modules import run_module
from tests.integration.test_ip_certificates import role_vars, run_role
from tests.lab.lab import HAPROXY_CFG, free_ports

OLD = "0ld-thumbprint-of-the-setenv-form-xxxxxxxxx"
NEW = "new-thumbprint-after-the-move-to-the-map-xx"
NEWER = "and-another-one-over-the-runtime-api-only-x"
TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
HANDLER = "RUNNING HANDLER [tlsops.haproxy_acme.haproxy : Reload HAProxy]"


def answer(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/.well-known/acme-challenge/{TOKEN}",
                                    timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


WRITE_CONFIG = "Write haproxy.cfg and its maps, checked before they are in place"


def task_status(stdout: str, name: str) -> str:
    """``ok``, ``changed``, ``skipping``... of the task ``name`` in ansible-playbook's output."""
    match = re.search(rf"TASK \[[^\]]*: {re.escape(name)}\][^\n]*\n(\w+):", stdout)
    assert match, f"no task {name!r} in:\n{stdout}"
    return match.group(1)


def master_reloads(master_socket: Path) -> int:
    """The master's reload count from the master CLI's ``show proc`` (one command, then EOF)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(str(master_socket))
        sock.sendall(b"show proc\n")
        sock.shutdown(socket.SHUT_WR)  # the master CLI answers once the request is complete
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    for line in reply.decode().splitlines():
        words = line.split()
        if len(words) > 2 and words[1] == "master":
            return int(words[2])
    raise AssertionError(f"no master in show proc: {reply!r}")


def wait_for(predicate: t.Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (OSError, ConnectionError, AssertionError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def setenv_host(tmp_path: Path) -> t.Iterator[tuple[dict[str, t.Any], subprocess.Popen[bytes], Path]]:
    """A HAProxy (master-worker) on the setenv form, and the role's variables for the same files."""
    http_port, https_port = free_ports(2)
    variables = role_vars(tmp_path, haproxy_acme_thumbprint=OLD, haproxy_bind_address="127.0.0.1",
                          haproxy_http_port=http_port, haproxy_https_port=https_port)
    (tmp_path / "certs").mkdir()
    config = Path(variables["haproxy_config_path"])
    config.write_text(HAPROXY_CFG.format(
        socket=variables["haproxy_stats_socket"], pidfile=tmp_path / "haproxy.pid", thumbprint=OLD,
        bind="127.0.0.1", http_port=http_port, https_port=https_port, cert_dir=variables["haproxy_cert_dir"]))
    master_socket = tmp_path / "master.sock"
    log = open(tmp_path / "haproxy.log", "ab")
    proc = subprocess.Popen(["haproxy", "-W", "-db", "-f", str(config), "-S", str(master_socket)],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    try:
        wait_for(lambda: answer(http_port)[0] == 200 and master_reloads(master_socket) == 0, "HAProxy to start")
        yield variables, proc, master_socket
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_one_reload_to_the_map_then_none(
    setenv_host: tuple[dict[str, t.Any], subprocess.Popen[bytes], Path], tmp_path: Path
) -> None:
    variables, master, master_socket = setenv_host
    stats, port = variables["haproxy_stats_socket"], variables["haproxy_http_port"]
    map_path = Path(variables["haproxy_maps_dir"]) / "acme-thumbprint.map"
    assert answer(port) == (200, f"{TOKEN}.{OLD}\n")
    before = haproxy_pid(stats)
    assert master_reloads(master_socket) == 0

    # 1. The role moves the host to the map: the file (HAProxy does not read it yet; the
    #    configuration task writes it, as haproxy -c needs it), the new haproxy.cfg, and the
    #    handler. The test reloads as the service would.
    moved = run_role(tmp_path, variables)
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert task_status(moved.stdout, WRITE_CONFIG) == "changed"
    assert task_status(moved.stdout, "Serve the ACME account thumbprint from its map, without a reload") == "ok"
    assert moved.stdout.count(HANDLER) == 1
    assert map_path.read_text().endswith(f"thumbprint {OLD}\n")
    config = Path(variables["haproxy_config_path"]).read_text()
    assert "setenv" not in config and f"map({map_path})" in config
    assert haproxy_pid(stats) == before  # the role itself reloaded nothing
    os.kill(master.pid, signal.SIGUSR2)  # what 'systemctl reload haproxy' does on Debian
    # The master CLI comes back a little after the new worker on 3.0: wait for both.
    wait_for(lambda: haproxy_pid(stats) != before and answer(port)[0] == 200 and master_reloads(master_socket) == 1,
             "the reload")
    worker = haproxy_pid(stats)
    assert answer(port) == (200, f"{TOKEN}.{OLD}\n")  # the same thumbprint, from the map now
    (listing,) = raw_cli(stats, f"show map {map_path}")
    assert listing.split()[1:] == ["thumbprint", OLD]

    # 2. Another thumbprint through the role: over the Runtime API, no handler, the same worker.
    changed = run_role(tmp_path, {**variables, "haproxy_acme_thumbprint": NEW})
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert task_status(changed.stdout, "Serve the ACME account thumbprint from its map, without a reload") == "changed"
    assert task_status(changed.stdout, WRITE_CONFIG) == "ok"
    assert HANDLER not in changed.stdout
    assert answer(port) == (200, f"{TOKEN}.{NEW}\n")
    assert map_path.read_text().endswith(f"thumbprint {NEW}\n")

    # 3. And with the module alone, as an incident playbook does it.
    pushed = run_module("haproxy_acme_thumbprint", {"thumbprint": NEWER, "path": str(map_path), "socket": [stats]},
                        tmp_path)
    assert pushed["changed"] and pushed["previous_thumbprint"] == NEW, pushed
    assert answer(port) == (200, f"{TOKEN}.{NEWER}\n")
    assert haproxy_pid(stats) == worker and master_reloads(master_socket) == 1
