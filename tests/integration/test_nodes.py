# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The node lab itself: two booted systemd-nspawn nodes that the role and fleet tests build on.

Checks what those tests take for granted: SSH with the generated key, systemd
fully running, the nodes reaching a service on the host's bridge address (where
pebble listens) and each other, no route out of the lab, a node that can be
stopped and started again with its disk, and a ``down`` that leaves nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import typing as t
from pathlib import Path

import pytest

from tests.lab.nodes import nodes as lab_nodes

pytestmark = [
    pytest.mark.nodes,
    pytest.mark.skipif(os.geteuid() != 0, reason="booting nodes needs root"),
    pytest.mark.skipif(not (shutil.which("systemd-nspawn") and shutil.which("debootstrap")),
                       reason="needs systemd-container and debootstrap"),
]

SET_NAME = "pytest-nodes"


@pytest.fixture(scope="module")
def node_set(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[lab_nodes.NodeSet]:
    """Two nodes for the whole module; always taken down again."""
    state = tmp_path_factory.mktemp("nodes")
    try:
        yield lab_nodes.up(SET_NAME, state, count=2)
    finally:
        lab_nodes.down(state)


def ssh(node_set: lab_nodes.NodeSet, node: lab_nodes.Node, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(lab_nodes.ssh_argv(node_set, node, command), capture_output=True, text=True,
                          timeout=30, check=False)


def test_nodes_answer_ssh_with_systemd_running(node_set: lab_nodes.NodeSet) -> None:
    for node in node_set.nodes:
        proc = ssh(node_set, node, "systemctl", "is-system-running")
        assert proc.stdout.strip() == "running", (node.name, proc.stdout, proc.stderr)
        assert ssh(node_set, node, "hostname").stdout.strip() == node.name


def test_nodes_run_haproxy_and_debian_python(node_set: lab_nodes.NodeSet) -> None:
    node = node_set.nodes[0]
    assert lab_nodes.node_exec(node_set.state_dir, node.name, ["systemctl", "is-active", "haproxy"]).stdout.strip() \
        == "active"
    probe = "import cryptography, requests; print(cryptography.__version__, requests.__version__)"
    versions = lab_nodes.node_exec(node_set.state_dir, node.name, ["python3", "-c", probe]).stdout.split()
    assert len(versions) == 2


def test_nodes_have_a_pure_cgroup2_tree(node_set: lab_nodes.NodeSet) -> None:
    """As on real Debian 12/13 hosts, whatever the lab host mounts; systemd 256+ needs it."""
    fs = lab_nodes.node_exec(node_set.state_dir, "1", ["stat", "-f", "-c", "%T", "/sys/fs/cgroup"]).stdout
    assert fs.strip() == "cgroup2fs"


def test_state_files_describe_the_nodes(node_set: lab_nodes.NodeSet) -> None:
    state = Path(node_set.state_dir)
    recorded = json.loads((state / "nodes.json").read_text())
    assert [n["address"] for n in recorded["nodes"]] == [n.address for n in node_set.nodes]
    assert all(n["user"] == "root" and n["port"] == 22 and n["leader_pid"] > 0 for n in recorded["nodes"])
    ini = (state / "inventory.ini").read_text()
    assert all(f"ansible_host={n.address}" in ini for n in node_set.nodes)
    assert "ansible_python_interpreter=/usr/bin/python3" in ini
    inventory = json.loads((state / "inventory.yml").read_text())  # JSON is YAML
    assert set(inventory["all"]["children"]["nodes"]["hosts"]) == {n.name for n in node_set.nodes}


def test_nodes_reach_a_service_on_the_host_bridge(node_set: lab_nodes.NodeSet) -> None:
    """Pebble and challtestsrv will listen on the host's bridge address."""
    with socket.socket() as server:
        server.bind((node_set.host_address, 0))
        server.listen()
        server.settimeout(20)
        port = server.getsockname()[1]
        seen: list[str] = []

        def answer() -> None:
            for _ in node_set.nodes:
                conn, peer = server.accept()
                with conn:
                    conn.sendall(b"hello " + peer[0].encode())
                    seen.append(peer[0])

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        probe = f"import socket; print(socket.create_connection(('{node_set.host_address}', {port}), 5).recv(64))"
        for node in node_set.nodes:
            out = lab_nodes.node_exec(node_set.state_dir, node.name, ["python3", "-c", probe], timeout=30).stdout
            assert f"hello {node.address}" in out
        thread.join(10)
    assert seen == [n.address for n in node_set.nodes]


def test_nodes_reach_each_other_but_not_the_outside(node_set: lab_nodes.NodeSet) -> None:
    first, second = node_set.nodes
    probe = f"import socket; print(socket.create_connection(('{second.address}', 22), 5).recv(8))"
    assert "SSH-" in lab_nodes.node_exec(node_set.state_dir, first.name, ["python3", "-c", probe]).stdout
    # No default route: nothing leaves 10.231.0.0/24 (TEST-NET-1 stands for "anywhere").
    route = lab_nodes.node_exec(node_set.state_dir, first.name, ["ip", "route", "get", "192.0.2.1"], check=False)
    assert route.returncode != 0
    assert "unreachable" in route.stderr.lower()


def test_a_stopped_node_starts_again_with_its_disk(node_set: lab_nodes.NodeSet) -> None:
    node = node_set.nodes[1]
    lab_nodes.node_exec(node_set.state_dir, node.name, ["sh", "-c", "echo kept > /root/marker"])
    lab_nodes.stop_node(node_set.state_dir, node.name)
    with pytest.raises(OSError), socket.create_connection((node.address, 22), timeout=2):
        pass
    lab_nodes.start_node(node_set.state_dir, node.name)
    assert ssh(node_set, node, "cat", "/root/marker").stdout.strip() == "kept"
    assert ssh(node_set, node, "systemctl", "is-system-running").stdout.strip() == "running"


def test_down_leaves_nothing_and_runs_twice(node_set: lab_nodes.NodeSet) -> None:
    state = node_set.state_dir
    merged = [str(n.merged) for n in node_set.nodes]
    pids = [n.nspawn_pid for n in lab_nodes.load_nodes(state).nodes]
    lab_nodes.down(state)
    lab_nodes.down(state)
    assert not any(lab_nodes.netns_exists(n.netns) for n in node_set.nodes)
    assert not any(lab_nodes.link_exists(n.veth) for n in node_set.nodes)
    assert not any(m.mountpoint in merged for m in lab_nodes.mounts())
    assert not any(lab_nodes.pid_alive(pid) for pid in pids)
    others_up = any(lab_nodes.set_is_live(s) for s in lab_nodes.registered_sets())
    assert others_up or not lab_nodes.link_exists(lab_nodes.BRIDGE)
