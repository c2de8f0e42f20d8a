"""Run every integration target (tests/integration/targets/<name>) against the real lab.

Each target is an Ansible role of tasks, as ansible-test lays them out; this runner
plays it on localhost with the lab's facts as extra variables (tests/lab/README.md).
Targets named ``setup_*`` are helpers and are not run on their own; a target whose
``aliases`` says ``disabled`` or ``nodes`` is skipped here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lab.lab import LabInfo

TARGETS = Path(__file__).parent / "targets"
ROOT = Path(__file__).resolve().parents[2]


def _targets() -> list[str]:
    names = []
    for path in sorted(TARGETS.glob("*/tasks/main.yml")):
        target = path.parent.parent
        aliases = (target / "aliases").read_text().split() if (target / "aliases").exists() else []
        if target.name.startswith("setup_") or "disabled" in aliases or "nodes" in aliases:
            continue
        names.append(target.name)
    return names


@pytest.mark.parametrize("target", _targets())
def test_target(target: str, lab: LabInfo, tmp_path: Path) -> None:
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        f"- hosts: localhost\n  gather_facts: false\n  roles:\n    - role: {target}\n"
    )
    extra = lab.extra_vars()
    extra["ansible_python_interpreter"] = sys.executable
    extra["output_dir"] = str(tmp_path / "out")
    (tmp_path / "out").mkdir()
    (tmp_path / "vars.json").write_text(json.dumps(extra))
    env = {
        **os.environ,
        "ANSIBLE_ROLES_PATH": str(TARGETS),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "build" / "collections"),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "false",
    }
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
         str(playbook), "-e", f"@{tmp_path / 'vars.json'}"],
        env=env, capture_output=True, text=True, timeout=900, check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"target {target} failed (rc={proc.returncode}):\n{proc.stdout[-20000:]}\n{proc.stderr[-5000:]}")
