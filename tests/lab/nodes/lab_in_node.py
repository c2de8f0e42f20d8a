# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The integration tests that need no nodes, run inside one booted node of a Debian release.

``make test`` runs those tests on the machine's own Python, HAProxy and pebble.
Managed hosts of another release run the collection's ``module_utils`` on that
release's Python, cryptography and HAProxy; this runs the same tests there: one
node booted from the ``lab`` flavour of the release's tree (its pebble, pytest and
ansible-core baked in), the working tree copied to ``/srv/tlsops``, and
``python3 -m pytest -m "not nodes" tests/integration`` inside it with the node's
``/usr/bin/python3``. The lab (tests/lab/lab.py) then starts pebble,
pebble-challtestsrv and HAProxy on the node's own loopback; nothing leaves the node.

CLI (as root; ``TLSOPS_NODES_CODENAME`` picks the release, default: this machine's)::

    python3 -m tests.lab.nodes.lab_in_node [--name trixie-lab] [--state-dir .lab/trixie-lab] [PYTEST_ARG...]

Exits with pytest's code (1 if the node did not come up). Only the standard library.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.lab.nodes import nodes

ROOT = Path(__file__).resolve().parents[3]
#: Where the working tree goes inside the node.
NODE_ROOT = "/srv/tlsops"
DEFAULT_PYTEST_ARGS = ("-m", "not nodes", "tests/integration")
#: Printed before the tests: what the node runs them with.
VERSIONS = (
    "python3 --version; "
    "python3 -c 'import cryptography, requests; "
    "print(\"cryptography\", cryptography.__version__, \"requests\", requests.__version__)'; "
    "haproxy -v | head -1; ansible --version | head -1; "
    # Debian's pebble says "Pebble version: dev": the package's version says which.
    "echo \"pebble $(dpkg-query -W -f='${Version}' pebble) ($(pebble -version 2>&1 | head -1))\""
)


def working_tree_files(root: Path = ROOT) -> list[str]:
    """What the host's stages test: tracked and untracked files, not the ignored ones."""
    out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "-co", "--exclude-standard"],
                         capture_output=True, check=True, timeout=60).stdout
    return sorted({name for name in out.decode().split("\0") if name})


def copy_tree(node: nodes.Node, root: Path = ROOT) -> int:
    """Copy the working tree into the node (through its overlay) and link the collection.

    Ansible finds the collection as ``ansible_collections/tlsops/haproxy_acme`` on
    ``ANSIBLE_COLLECTIONS_PATH``: ``build/collections`` holds that path as a symlink
    to the checkout, as scripts/bootstrap.sh makes it on the host.
    """
    dest = node.merged / NODE_ROOT.lstrip("/")
    nodes.rm_tree(dest)
    dest.mkdir(parents=True)
    copied = 0
    for name in working_tree_files(root):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copy2(root / name, target, follow_symlinks=False)
        except FileNotFoundError:
            continue  # deleted in the working tree, not yet in the index
        copied += 1
    link = dest / "build/collections/ansible_collections/tlsops/haproxy_acme"
    link.parent.mkdir(parents=True)
    link.symlink_to(NODE_ROOT)
    # Readable by all: a test runs module code as 'nobody'.
    subprocess.run(["chmod", "-R", "a+rX,go-w", str(dest)], check=True, timeout=60)
    return copied


def node_shell(node: nodes.Node, script: str, *, timeout: float, capture: bool = True) -> int:
    """Run a shell script in the node, in the copied tree, with a clean environment."""
    env = ["env", "HOME=/root", "PYTHONDONTWRITEBYTECODE=1",
           f"ANSIBLE_COLLECTIONS_PATH={NODE_ROOT}/build/collections",
           "ANSIBLE_FORCE_COLOR=0", "ANSIBLE_NOCOLOR=1", "PY_COLORS=0"]
    argv = [*env, "/bin/sh", "-c", f"cd {NODE_ROOT} && {script}"]
    proc = nodes.nsenter(node, argv, timeout=timeout, check=False, capture=capture)
    if capture:
        sys.stdout.write(proc.stdout + proc.stderr)
        sys.stdout.flush()
    return proc.returncode


def run(name: str, state_dir: Path, pytest_args: list[str], timeout: float) -> int:
    """Boot one lab node, copy the tree in, print versions, run pytest; always take it down."""
    started = time.monotonic()
    codename = nodes.host_codename()
    try:
        nodeset = nodes.up(name, state_dir, count=1, flavor="lab")
        node = nodeset.nodes[0]
        copied = copy_tree(node)
        print(f"lab node {node.name} (Debian {codename}) up with {copied} files in {NODE_ROOT} "
              f"after {time.monotonic() - started:.0f}s; versions inside:", flush=True)
        node_shell(node, VERSIONS, timeout=60)
        command = ["python3", "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args]
        print(f"--- in {node.name}: {shlex.join(command)}", flush=True)
        return node_shell(node, shlex.join(command), timeout=timeout, capture=False)
    except nodes.NodesError as exc:
        print(f"lab node: error: {exc}", file=sys.stderr)
        return 1
    except subprocess.TimeoutExpired as exc:
        print(f"lab node: error: timed out after {exc.timeout:.0f}s in the node", file=sys.stderr)
        return 1
    finally:
        nodes.down(state_dir)
        print(f"lab node: {time.monotonic() - started:.0f}s in all, boot to poweroff", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--name", default=None, help="node set name (default <codename>-lab)")
    parser.add_argument("--state-dir", type=Path, default=None, help="default .lab/<name> in the checkout")
    parser.add_argument("--timeout", type=float, default=900.0, help="for pytest inside the node, seconds")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER,
                        help=f"pytest's arguments (default: {shlex.join(DEFAULT_PYTEST_ARGS)})")
    args = parser.parse_args(argv)
    try:
        nodes.require_root()
        name = args.name or f"{nodes.host_codename()}-lab"
    except nodes.NodesError as exc:
        print(f"lab node: error: {exc}", file=sys.stderr)
        return 1
    state_dir = (args.state_dir or ROOT / ".lab" / name).resolve()
    pytest_args = args.pytest_args[1:] if args.pytest_args[:1] == ["--"] else args.pytest_args
    os.umask(0o022)
    return run(name, state_dir, pytest_args or list(DEFAULT_PYTEST_ARGS), args.timeout)


if __name__ == "__main__":
    sys.exit(main())
