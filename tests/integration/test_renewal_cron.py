"""The renewal_timer role's cron fallback on a real host: the cron file it writes
runs the job under flock as the acme user, and switching back to systemd removes it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
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

ROOT = Path(__file__).resolve().parents[2]
PLAY = """
- hosts: all
  become: true
  pre_tasks:
    - name: The certificate directory the haproxy role would create
      ansible.builtin.file: {path: /etc/haproxy/certs, state: directory, owner: haproxy, group: haproxy, mode: "2770"}
  roles:
    - role: tlsops.haproxy_acme.acme_user
    - role: tlsops.haproxy_acme.renewal_timer
      vars:
        renewal_timer_directory: https://10.231.0.1:14000/dir
        renewal_timer_certificates: [{name: cron.example, domains: [cron.example]}]
"""


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[tuple[Path, lab_nodes.Node]]:
    state = tmp_path_factory.mktemp("cron")
    try:
        node_set = lab_nodes.up("pytest-cron", state, count=1)
        yield state, node_set.nodes[0]
    finally:
        lab_nodes.down(state)


def play(state: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    (tmp / "play.yml").write_text(PLAY)
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "build" / "collections"),
           "ANSIBLE_HOST_KEY_CHECKING": "false", "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(state / "inventory.yml"),
                           str(tmp / "play.yml"), *extra], env=env, capture_output=True, text=True, timeout=600,
                          check=False)


def on_node(state: Path, node: lab_nodes.Node, command: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(ROOT / "tests" / "lab" / "nodes" / "nodes.py"), "exec", "--state-dir", str(state),
            node.name, "--", "sh", "-c", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_cron_fallback_runs_the_job_under_flock_and_goes_away(node: tuple[Path, lab_nodes.Node],
                                                              tmp_path: Path) -> None:
    state, host = node
    first = play(state, tmp_path, "-e", "renewal_timer_scheduler=cron")
    assert first.returncode == 0, first.stdout[-4000:]
    cron = on_node(state, host, "cat /etc/cron.d/haproxy-acme-renew").stdout
    line = next(entry for entry in cron.splitlines() if "haproxy-acme-renew --config" in entry)
    fields = line.split()
    assert fields[5] == "acme" and fields[6:8] == ["/usr/bin/flock", "-n"], line
    assert on_node(state, host, "systemctl is-enabled haproxy-acme-renew.timer").stdout.strip() != "enabled"

    # The command exactly as cron runs it (as acme, under the lock), in dry-run: no order, no push.
    command = " ".join(fields[6:]) + " --dry-run"
    ran = on_node(state, host, f"runuser -u acme -- {command}")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "cron.example: issued (no certificate yet)" in ran.stdout, ran.stdout
    assert "dry run: 1 certificates" in ran.stdout
    # While another run holds the lock, flock -n skips instead of running twice.
    held = on_node(state, host, f"runuser -u acme -- flock -n {fields[8]} sleep 3 & sleep 0.5; "
                                f"runuser -u acme -- {command}; echo rc=$?")
    assert "rc=1" in held.stdout and "cron.example" not in held.stdout, held.stdout

    again = play(state, tmp_path, "-e", "renewal_timer_scheduler=cron")
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout[-4000:]

    back = play(state, tmp_path, "-e", "renewal_timer_scheduler=systemd")
    assert back.returncode == 0, back.stdout[-4000:]
    assert on_node(state, host, "test -e /etc/cron.d/haproxy-acme-renew; echo $?").stdout.strip() == "1"
    assert on_node(state, host, "systemctl is-active haproxy-acme-renew.timer").stdout.strip() == "active"
    assert json.loads(on_node(state, host, "cat /etc/haproxy-acme/renew.json").stdout)["certificates"][0]["name"] \
        == "cron.example"
