# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Booted systemd-nspawn test nodes: real hosts with systemd, sshd and HAProxy.

The roles, playbooks and fleet tests need hosts that boot systemd, run sshd and
HAProxy, and can be stopped and started: Docker does not run on these machines,
booted ``systemd-nspawn`` containers do (see docs/testing.md). This tool builds
one cached Debian root filesystem and boots any number of nodes over it, each
on its own overlay mount, in its own network namespace, with a static address on
a bridge the host also sits on (10.231.0.1). No default route, no NAT: nodes
reach the host and each other, never the outside world.

CLI (as root)::

    python3 tests/lab/nodes/nodes.py rootfs
    python3 tests/lab/nodes/nodes.py up --name demo --count 2 --state-dir .lab/nodes
    python3 tests/lab/nodes/nodes.py exec --state-dir .lab/nodes demo-1 -- systemctl status haproxy
    python3 tests/lab/nodes/nodes.py stop --state-dir .lab/nodes demo-2
    python3 tests/lab/nodes/nodes.py start --state-dir .lab/nodes demo-2
    python3 tests/lab/nodes/nodes.py down --state-dir .lab/nodes

From Python: :func:`build_rootfs`, :func:`up`, :func:`down`, :func:`node_exec`,
:func:`stop_node`, :func:`start_node`, :func:`load_nodes`.

Only the standard library is used, so the tool runs with any Python 3.11 (the
host's or the project's venv) and needs nothing installed but debootstrap,
systemd-container (systemd-nspawn), iproute2, util-linux and openssh-client.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import typing as t
import uuid
from pathlib import Path

# ---------------------------------------------------------------------------
# Constants

#: Packages baked into the root filesystem. Nodes cannot reach a package mirror,
#: so everything a role or test needs must be here. ``--include`` does not resolve
#: virtual packages: python3-cryptography's python3-cffi-backend is named.
PACKAGES: tuple[str, ...] = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "python3",
    "python3-apt",
    "python3-cryptography",
    "python3-cffi-backend",
    "python3-requests",
    "haproxy",
    "openssh-server",
    "iproute2",
    "ca-certificates",
    "sudo",
    "procps",
    "cron",
    "curl",
    "openssl",
    "socat",
)

#: Bumped whenever :func:`customize_rootfs` changes, so cached trees are rebuilt.
RECIPE_VERSION = 1

#: The ``lab`` flavour: a separate tree, ``rootfs-<codename>-lab``, for a node that
#: runs the test lab itself (tests/lab/lab.py and the integration tests that need no
#: nodes) with the release's own pebble, pytest and ansible-core. The plain tree stays
#: what a managed host has: a role that leaned on something ansible-core pulls in
#: (PyYAML, Jinja2) must not pass on nodes by accident. Only releases whose
#: ansible-core the collection supports (>= 2.17) have one: Debian 12's is 2.14.
#: Their dependencies (Jinja2, PyYAML, resolvelib, pluggy, ...) are real packages,
#: which ``--include`` resolves.
LAB_PACKAGES: dict[str, tuple[str, ...]] = {
    "trixie": (
        "pebble",  # pebble and pebble-challtestsrv (2.6)
        "python3-pytest",
        "ansible-core",
    ),
}
FLAVORS = ("", "lab")

BRIDGE = "tlsopsbr0"
#: Set on the bridge when this tool creates it: ``down`` removes only a bridge
#: carrying this alias, never one somebody else made.
BRIDGE_ALIAS = "tlsops-haproxy-acme-nodes"
DEFAULT_SUBNET = "10.231.0"
HOST_OCTET = 1
FIRST_NODE_OCTET = 10
CACHE_DIR = Path(os.environ.get("TLSOPS_NODES_CACHE", "/var/cache/tlsops-haproxy-acme")).resolve()
RUN_DIR = Path(os.environ.get("TLSOPS_NODES_RUN_DIR", "/run/tlsops-nodes")).resolve()
STAMP_PATH = "etc/tlsops-nodes-rootfs.json"
CGROUP_PARENT = "tlsops-nodes"
NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BOOT_TIMEOUT = float(os.environ.get("TLSOPS_NODES_BOOT_TIMEOUT", "90"))
STOP_TIMEOUT = 10.0
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
HOST_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
#: overlayfs options are comma and colon separated: such paths cannot be mounted.
UNSAFE_PATH_RE = re.compile(r"[\s,:=\\]")


class NodesError(RuntimeError):
    """Anything that stops the node lab from coming up or going down cleanly."""


def log(message: str) -> None:
    """Progress goes to stderr so that ``--json`` output on stdout stays clean."""
    print(f"nodes: {message}", file=sys.stderr, flush=True)


def run(argv: t.Sequence[str], *, check: bool = True, timeout: float = 120.0,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output, raise :class:`NodesError` on failure."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        raise NodesError(f"timed out after {timeout:.0f}s: {' '.join(argv)}") from exc
    if check and proc.returncode != 0:
        raise NodesError(f"failed ({proc.returncode}): {' '.join(argv)}\n{proc.stderr.strip()}")
    return proc


def require_root() -> None:
    """Namespaces, mounts and cgroups need root; say so before half a lab exists."""
    if os.geteuid() != 0:
        raise NodesError("the node lab needs root (network namespaces, overlay mounts, cgroups)")


def rm_tree(path: Path) -> None:
    """Remove a tree without ever crossing into another mount (a stray bind of /dev)."""
    if path.exists() or path.is_symlink():
        run(["rm", "-rf", "--one-file-system", "--", str(path)], timeout=600)


@contextlib.contextmanager
def locked(path: Path) -> t.Iterator[None]:
    """Serialise builds, address allocation and bridge handling between runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------
# Root filesystem


def host_codename(os_release: Path = Path("/etc/os-release")) -> str:
    """The host's own Debian codename: nodes run what the host runs (12 or 13)."""
    override = os.environ.get("TLSOPS_NODES_CODENAME")
    if override:
        return override
    for line in os_release.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key == "VERSION_CODENAME" and value.strip('"'):
            return value.strip('"')
    raise NodesError(f"no VERSION_CODENAME in {os_release}")


def _list_mirrors(text: str, codename: str) -> list[str]:
    """Mirrors from one-line ``deb [opts] URI suite components`` entries."""
    found = []
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb" and words[2] == codename:
            found.append(words[1])
    return found


def _deb822_mirrors(text: str, codename: str) -> list[str]:
    """Mirrors from deb822 ``.sources`` stanzas (``Types: deb``, ``Suites: <codename>``)."""
    found = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if (fields.get("enabled", "yes").lower() != "no" and "deb" in fields.get("types", "").split()
                and codename in fields.get("suites", "").split() and fields.get("uris")):
            found.append(fields["uris"].split()[0])
    return found


def host_mirror(codename: str, apt_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt already uses for ``codename`` (the only one reachable here)."""
    override = os.environ.get("TLSOPS_NODES_MIRROR")
    if override:
        return override
    candidates: list[str] = []
    one_line = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for path in one_line:
        if path.is_file():
            candidates += _list_mirrors(path.read_text(encoding="utf-8", errors="replace"), codename)
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        candidates += _deb822_mirrors(path.read_text(encoding="utf-8", errors="replace"), codename)
    return candidates[0] if candidates else "http://deb.debian.org/debian"


def packages_for(codename: str, flavor: str = "") -> tuple[str, ...]:
    """The packages of a tree: :data:`PACKAGES`, plus :data:`LAB_PACKAGES` for ``lab``."""
    if flavor not in FLAVORS:
        raise NodesError(f"unknown root filesystem flavour {flavor!r} (have: plain, lab)")
    if not flavor:
        return PACKAGES
    if codename not in LAB_PACKAGES:
        raise NodesError(f"no lab flavour for {codename}: its ansible-core is older than the collection's "
                         f"2.17, or unknown (have: {', '.join(sorted(LAB_PACKAGES))})")
    return PACKAGES + LAB_PACKAGES[codename]


def rootfs_path(codename: str | None = None, flavor: str = "") -> Path:
    """Where the cached tree lives (``TLSOPS_NODES_ROOTFS`` overrides the plain tree's path).

    A flavoured tree sits beside the plain one: ``rootfs-<codename>-<flavor>``.
    """
    override = os.environ.get("TLSOPS_NODES_ROOTFS")
    path = Path(override).resolve() if override else CACHE_DIR / f"rootfs-{codename or host_codename()}"
    return path.with_name(f"{path.name}-{flavor}") if flavor else path


def rootfs_stamp(codename: str, packages: t.Sequence[str] | None = None, flavor: str = "") -> dict[str, t.Any]:
    """What a tree was built from; a different hash means the cache is stale.

    The plain tree's recipe has no ``flavor`` key, so its hash does not depend on
    whether flavours exist (its cache survives their changes).
    """
    recipe: dict[str, t.Any] = {"codename": codename, "packages": sorted(packages or packages_for(codename, flavor)),
                                "recipe": RECIPE_VERSION}
    if flavor:
        recipe["flavor"] = flavor
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
    return {**recipe, "hash": digest}


def rootfs_is_current(path: Path, codename: str, flavor: str = "") -> bool:
    """True when ``path`` is a finished tree built from today's package list."""
    try:
        stamp = json.loads((path / STAMP_PATH).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(stamp.get("hash") == rootfs_stamp(codename, flavor=flavor)["hash"])


def build_rootfs(force: bool = False, flavor: str = "") -> Path:
    """Return the cached root filesystem, building it first if missing or stale.

    The tree is built in ``<path>.build-<pid>`` and renamed into place only when
    complete, so an interrupted build is never booted. ``flavor="lab"`` is the
    tree with :data:`LAB_PACKAGES` as well.
    """
    require_root()
    codename = host_codename()
    packages = packages_for(codename, flavor)
    path = rootfs_path(codename, flavor)
    stale = list(path.parent.glob(f"{path.name}.build-*")) + list(path.parent.glob(f"{path.name}.old-*"))
    if not force and not stale and rootfs_is_current(path, codename, flavor):
        return path
    with locked(path.with_name(path.name + ".lock")):
        _remove_stale_builds(path)
        if not force and rootfs_is_current(path, codename, flavor):
            return path  # current, or another process built it while we waited
        _refuse_if_in_use(path)  # before spending a minute on a tree we could not swap in
        started = time.monotonic()
        tmp = path.with_name(f"{path.name}.build-{os.getpid()}")
        try:
            _debootstrap_with_retry(tmp, codename, host_mirror(codename), packages)
            customize_rootfs(tmp, codename, flavor)
            _replace_rootfs(path, tmp)
        finally:
            _unmount_under(tmp)
            rm_tree(tmp)
        log(f"root filesystem {path} built in {time.monotonic() - started:.0f}s")
    return path


def _remove_stale_builds(path: Path) -> None:
    """Drop trees an interrupted build or swap left (their mounts first).

    Called with the build lock held, and every builder holds it for its whole
    build: any ``.build-*`` or ``.old-*`` tree seen here is a leftover.
    """
    for stale in [*path.parent.glob(f"{path.name}.build-*"), *path.parent.glob(f"{path.name}.old-*")]:
        log(f"removing leftover {stale}")
        _unmount_under(stale)
        rm_tree(stale)


def _debootstrap_with_retry(target: Path, codename: str, mirror: str, packages: t.Sequence[str] = PACKAGES,
                            attempts: int = 2) -> None:
    """A mirror hiccup should not fail a CI run: try again once from scratch."""
    for attempt in range(1, attempts + 1):
        try:
            _debootstrap(target, codename, mirror, packages)
            return
        except NodesError:
            _unmount_under(target)
            rm_tree(target)
            if attempt == attempts:
                raise
            log(f"debootstrap failed (attempt {attempt} of {attempts}); retrying")


def _debootstrap(target: Path, codename: str, mirror: str, packages: t.Sequence[str] = PACKAGES) -> None:
    """Run debootstrap; its .deb cache saves the downloads when a tree is rebuilt."""
    debs = CACHE_DIR / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    logfile = target.with_name(target.name.split(".build-")[0] + ".build.log")
    argv = ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}",
            f"--cache-dir={debs}", codename, str(target), mirror]
    log(f"debootstrap {codename} from {mirror} (about 90 s; log: {logfile})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8"}
    with logfile.open("w") as out:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                              env=env, check=False, timeout=1800)
    if proc.returncode != 0:
        tail = "\n".join(logfile.read_text(errors="replace").splitlines()[-20:])
        raise NodesError(f"debootstrap failed ({proc.returncode}), see {logfile}:\n{tail}")


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


#: Drop-ins written into the tree; each says why in its own comment.
ROOTFS_FILES: dict[str, str] = {
    "etc/systemd/system.conf.d/tlsops-nodes.conf": (
        "# tlsops node: a test node powers off in seconds, not minutes.\n"
        "[Manager]\nDefaultTimeoutStopSec=5s\nDefaultTimeoutStartSec=60s\n"),
    "etc/systemd/journald.conf.d/tlsops-nodes.conf": (
        "# tlsops node: keep the journal in memory, nodes are thrown away.\n"
        "[Journal]\nStorage=volatile\nRuntimeMaxUse=32M\n"),
    "etc/ssh/sshd_config.d/tlsops-nodes.conf": (
        "# tlsops node: per-node host keys (no RSA: slow to make, not needed);\n"
        "# Ansible opens many connections at once.\n"
        "HostKey /etc/ssh/ssh_host_ed25519_key\nHostKey /etc/ssh/ssh_host_ecdsa_key\n"
        "PermitRootLogin prohibit-password\nUseDNS no\nMaxStartups 64:30:128\nMaxSessions 64\n"),
    "etc/apt/sources.list": (
        "# tlsops node: no mirror is reachable from a node; every package it needs is\n"
        "# baked into the root filesystem (tests/lab/nodes/nodes.py PACKAGES).\n"),
    "etc/resolv.conf": "# tlsops node: no DNS; the lab's names are in /etc/hosts.\n",
    "etc/hostname": "tlsops-node\n",
    "etc/fstab": "# tlsops node: the root filesystem is an overlay mounted by the host.\n",
}

#: Timers that would reach for the network or churn the disk of a test node.
MASKED_UNITS = ("apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer",
                "e2scrub_reap.service", "fstrim.timer", "man-db.timer")


def customize_rootfs(root: Path, codename: str, flavor: str = "") -> None:
    """Make a debootstrapped tree a bootable, offline, quiet test node."""
    for relative, text in ROOTFS_FILES.items():
        if (root / relative).is_symlink():
            (root / relative).unlink()  # never write through a link out of the tree
        _write(root / relative, text)
    _write(root / "etc/machine-id", "")  # each node gets its own at `up`
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()  # regenerated per node: nodes must not share host keys
    for lists in (root / "var/lib/apt/lists").glob("*"):
        if lists.is_file():
            lists.unlink()
    rm_tree(root / "var/cache/apt/archives")
    (root / "var/cache/apt/archives/partial").mkdir(parents=True)
    systemctl = ["systemctl", f"--root={root}"]
    run([*systemctl, "enable", "ssh.service"])
    present = [unit for unit in MASKED_UNITS if _unit_exists(root, unit)]
    if present:
        run([*systemctl, "mask", *present])
    _write(root / STAMP_PATH, json.dumps(rootfs_stamp(codename, flavor=flavor), indent=2) + "\n")


def _unit_exists(root: Path, unit: str) -> bool:
    return any((root / base / unit).exists() for base in ("lib/systemd/system", "usr/lib/systemd/system"))


def _refuse_if_in_use(path: Path) -> None:
    """A tree that is the lower layer of a mounted overlay must not change under it."""
    users = [m for m in mounts() if m.fstype == "overlay" and f"lowerdir={path}," in m.options + ","]
    if users:
        raise NodesError(f"{path} must be rebuilt but is the lower layer of {len(users)} node(s): "
                         "take them down first (`down`, or `gc` for stale ones)")


def _replace_rootfs(path: Path, new: Path) -> None:
    """Swap a finished tree into place, the old one (if any) out."""
    if path.exists():
        _refuse_if_in_use(path)
        old = path.with_name(f"{path.name}.old-{os.getpid()}")
        path.rename(old)
        new.rename(path)
        rm_tree(old)
    else:
        new.rename(path)


# ---------------------------------------------------------------------------
# Mounts


@dataclasses.dataclass(frozen=True)
class Mount:
    """One line of /proc/self/mountinfo, reduced to what the tool needs."""

    mountpoint: str
    fstype: str
    options: str


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts() -> list[Mount]:
    """Current mounts; super options carry overlay's ``lowerdir=``."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines():
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) >= 5 and len(rest) >= 3:
            found.append(Mount(_unescape(fields[4]), rest[0], rest[2]))
    return found


def is_mounted(path: Path) -> bool:
    return any(m.mountpoint == str(path) for m in mounts())


def _unmount_under(path: Path) -> None:
    """Unmount everything at or below ``path``, deepest first (lazy if busy)."""
    prefix = str(path)
    below = sorted({m.mountpoint for m in mounts()
                    if m.mountpoint == prefix or m.mountpoint.startswith(prefix + "/")},
                   key=len, reverse=True)
    for point in below:
        if run(["umount", point], check=False).returncode != 0:
            run(["umount", "-l", point], check=False)


def fs_type(path: Path) -> str:
    return run(["stat", "-f", "-c", "%T", str(path)]).stdout.strip()


# ---------------------------------------------------------------------------
# Processes and cgroups


def pid_alive(pid: int) -> bool:
    """Alive and not a zombie (a zombie nspawn has already let its container go)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (this kernel has no /proc/<pid>/task/*/children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[-1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def is_container_init(pid: int) -> bool:
    """PID 1 of its own PID namespace (``NSpid: <host pid> 1``)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                ids = line.split()[1:]
                return len(ids) > 1 and ids[-1] == "1"
    return False


def cgroup_layout() -> str:
    """``systemd`` (host PID 1 is systemd: use systemd-run scopes), or how cgroupfs is mounted.

    Each nspawn must sit in a cgroup of its own, or the containers fight over one
    and boot degraded. With no systemd on the host we make that cgroup ourselves.
    """
    if Path("/proc/1/comm").read_text().strip() == "systemd" and shutil.which("systemd-run"):
        return "systemd"
    types = {m.mountpoint: m.fstype for m in mounts()}
    if types.get("/sys/fs/cgroup") == "cgroup2":
        return "unified"
    if types.get("/sys/fs/cgroup/systemd") == "cgroup":
        return "hybrid" if types.get("/sys/fs/cgroup/unified") == "cgroup2" else "legacy"
    raise NodesError("no usable cgroup hierarchy: neither cgroup2 at /sys/fs/cgroup nor name=systemd")


def cgroup_dirs(unit: str, layout: str) -> list[Path]:
    """The cgroup directories a node's nspawn is placed in (none under systemd)."""
    base = Path("/sys/fs/cgroup")
    return {
        "systemd": [],
        "unified": [base / CGROUP_PARENT / unit],
        "hybrid": [base / "systemd" / CGROUP_PARENT / unit, base / "unified" / CGROUP_PARENT / unit],
        "legacy": [base / "systemd" / CGROUP_PARENT / unit],
    }[layout]


def cgroup_pids(directory: Path) -> list[int]:
    """Every process in a cgroup and its descendants."""
    found: list[int] = []
    if directory.is_dir():
        for procs in directory.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                found += [int(x) for x in procs.read_text().split()]
    return found


def remove_cgroup(directory: Path) -> None:
    """Kill what is left in a node's cgroup, then remove it bottom-up."""
    if not directory.is_dir():
        return
    deadline = time.monotonic() + 5
    while (pids := cgroup_pids(directory)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    for sub in sorted((p for p in directory.rglob("*") if p.is_dir()), key=lambda p: len(p.parts),
                      reverse=True):
        with contextlib.suppress(OSError):
            sub.rmdir()
    with contextlib.suppress(OSError):
        directory.rmdir()


# ---------------------------------------------------------------------------
# Network


def ip_json(*args: str) -> list[dict[str, t.Any]]:
    out = run(["ip", "-j", *args], check=False).stdout.strip()
    return t.cast("list[dict[str, t.Any]]", json.loads(out)) if out else []


def link_exists(name: str) -> bool:
    return run(["ip", "link", "show", "dev", name], check=False).returncode == 0


def netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def bridge_ports(bridge: str = BRIDGE) -> list[str]:
    return [link["ifname"] for link in ip_json("link", "show", "master", bridge) if "ifname" in link]


def ensure_bridge(subnet: str) -> None:
    """Create the bridge (host side 10.231.0.1/24) or adopt the one an earlier run left."""
    host_cidr = f"{subnet}.{HOST_OCTET}/24"
    _refuse_foreign_subnet(subnet)
    if not link_exists(BRIDGE):
        # A fixed MAC: a bridge otherwise takes its lowest port's, which changes as
        # nodes come and go and leaves running nodes with a stale entry for the host.
        run(["ip", "link", "add", BRIDGE, "address", mac_for(f"{subnet}.{HOST_OCTET}"), "type", "bridge",
             "stp_state", "0", "forward_delay", "0"])
        run(["ip", "link", "set", BRIDGE, "alias", BRIDGE_ALIAS])
    addrs = {f"{a['local']}/{a['prefixlen']}" for link in ip_json("-4", "addr", "show", "dev", BRIDGE)
             for a in link.get("addr_info", [])}
    if host_cidr not in addrs:
        run(["ip", "addr", "add", host_cidr, "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])


def _refuse_foreign_subnet(subnet: str) -> None:
    """Another interface carrying our subnet would make replies leave the wrong way."""
    net = ipaddress.ip_network(f"{subnet}.0/24")
    for link in ip_json("-4", "addr", "show"):
        for addr in link.get("addr_info", []):
            if link.get("ifname") != BRIDGE and ipaddress.ip_address(addr["local"]) in net:
                raise NodesError(f"{link.get('ifname')} already carries {addr['local']} in {net}")


def remove_bridge_if_unused() -> None:
    """Remove the bridge once no veth hangs on it, and only if this tool created it."""
    if not link_exists(BRIDGE) or bridge_ports():
        return
    details = ip_json("link", "show", "dev", BRIDGE)
    if details and details[0].get("ifalias") == BRIDGE_ALIAS:
        run(["ip", "link", "del", BRIDGE], check=False)


def mac_for(address: str) -> str:
    """A locally administered MAC derived from an IPv4 address (02:54:<4 octets>).

    Addresses are reused from run to run; with the same MAC for the same address,
    neighbour entries the host or other nodes still hold stay right. With random
    MACs a REACHABLE entry pointing at the previous node's MAC made the host wait
    ~30 s (base_reachable_time) before reaching a new node.
    """
    return "02:54:" + ":".join(f"{int(octet):02x}" for octet in address.split("."))


def plug_node(netns: str, veth: str, cidr: str) -> None:
    """Network namespace with ``lo`` and ``eth0`` (static, no gateway) on the bridge."""
    address = cidr.split("/", maxsplit=1)[0]
    run(["ip", "netns", "add", netns])
    run(["ip", "-n", netns, "link", "set", "lo", "up"])
    run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "address", mac_for(address),
         "netns", netns])
    run(["ip", "link", "set", veth, "master", BRIDGE])
    run(["ip", "link", "set", veth, "up"])
    run(["ip", "-n", netns, "addr", "add", cidr, "dev", "eth0"])
    # Announce the address when eth0 comes up (gratuitous ARP), and forget any
    # entry for it on the host: belt and braces with the fixed MAC above.
    run(["ip", "netns", "exec", netns, "sysctl", "-qw", "net.ipv4.conf.eth0.arp_notify=1"])
    run(["ip", "neigh", "flush", "to", address, "dev", BRIDGE], check=False)
    run(["ip", "-n", netns, "link", "set", "eth0", "up"])


def unplug_node(netns: str, veth: str) -> None:
    """Delete the veth explicitly (a stale one can outlive its namespace), then the namespace."""
    if link_exists(veth):
        run(["ip", "link", "del", veth], check=False)
    if netns_exists(netns):
        run(["ip", "netns", "del", netns], check=False)


# ---------------------------------------------------------------------------
# The plan of a node set (written before anything is created, so `down` can undo
# a run interrupted half-way)


@dataclasses.dataclass
class Node:
    """One node: everything needed to boot it, reach it and take it down again."""

    name: str
    index: int
    address: str
    netns: str
    veth: str
    unit: str
    dir: str
    nspawn_pid: int = 0
    leader_pid: int = 0
    state: str = "planned"
    boot_seconds: float = 0.0
    failed_units: list[str] = dataclasses.field(default_factory=list)

    @property
    def merged(self) -> Path:
        return Path(self.dir) / "merged"


@dataclasses.dataclass
class NodeSet:
    """The nodes of one ``up``: what nodes.json and the registry record."""

    name: str
    state_dir: str
    subnet: str
    group: str
    rootfs: str
    cgroup_layout: str
    ssh_key: str
    nodes: list[Node]

    @property
    def host_address(self) -> str:
        return f"{self.subnet}.{HOST_OCTET}"

    def node(self, ref: str) -> Node:
        """A node by name, by 1-based index, or by address."""
        for node in self.nodes:
            if ref in (node.name, str(node.index), node.address):
                return node
        raise NodesError(f"no node {ref!r} in {self.state_dir} (have {[n.name for n in self.nodes]})")

    def to_json(self) -> dict[str, t.Any]:
        data = dataclasses.asdict(self)
        data["host_address"] = self.host_address
        data["bridge"] = BRIDGE
        for entry, node in zip(data["nodes"], self.nodes):
            entry.update(port=22, user="root", ssh_key=self.ssh_key, machine=node.unit)
        return data

    @classmethod
    def from_json(cls, data: dict[str, t.Any]) -> NodeSet:
        fields = {f.name for f in dataclasses.fields(Node)}
        nodes = [Node(**{k: v for k, v in n.items() if k in fields}) for n in data["nodes"]]
        own = {f.name for f in dataclasses.fields(cls)} - {"nodes"}
        return cls(nodes=nodes, **{k: v for k, v in data.items() if k in own})


def set_file(state_dir: Path) -> Path:
    return state_dir / "nodes.json"


def save(nodeset: NodeSet) -> None:
    """Write nodes.json atomically and mirror it into the host-wide registry."""
    text = json.dumps(nodeset.to_json(), indent=2) + "\n"
    for path in (set_file(Path(nodeset.state_dir)), RUN_DIR / "sets" / f"{nodeset.name}.json"):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.rename(path)


def load_nodes(state_dir: str | Path) -> NodeSet:
    """The node set recorded in ``<state_dir>/nodes.json``."""
    path = set_file(Path(state_dir))
    try:
        return NodeSet.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError as exc:
        raise NodesError(f"no node set in {state_dir} (no nodes.json)") from exc


def registered_sets() -> list[NodeSet]:
    found = []
    for path in sorted((RUN_DIR / "sets").glob("*.json")):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            found.append(NodeSet.from_json(json.loads(path.read_text(encoding="utf-8"))))
    return found


def set_is_live(nodeset: NodeSet) -> bool:
    """A set is live while any of its namespaces exists (they outlive a stopped node)."""
    return any(netns_exists(node.netns) for node in nodeset.nodes)


def veth_name(name: str, index: int) -> str:
    """Host side of a node's veth: deterministic, unique per set, within IFNAMSIZ (15)."""
    return f"tls{hashlib.sha1(name.encode()).hexdigest()[:7]}-{index}"


def allocate_addresses(name: str, subnet: str, count: int) -> list[str]:
    """10.231.0.(10+i) unless another live set holds them; then the lowest free ones."""
    taken = {node.address for s in registered_sets() if s.name != name and set_is_live(s) for node in s.nodes}
    preferred = [f"{subnet}.{FIRST_NODE_OCTET + i}" for i in range(1, count + 1)]
    if not taken.intersection(preferred):
        return preferred
    free = [f"{subnet}.{octet}" for octet in range(FIRST_NODE_OCTET + 1, 255) if f"{subnet}.{octet}" not in taken]
    if len(free) < count:
        raise NodesError(f"only {len(free)} free addresses left in {subnet}.0/24")
    log(f"addresses {preferred[0]}.. are in use by another node set; using {free[0]}..")
    return free[:count]


def plan(name: str, hosts: list[str], state_dir: Path, subnet: str, group: str) -> NodeSet:
    """Decide names, addresses and paths for every node before creating anything."""
    addresses = allocate_addresses(name, subnet, len(hosts))
    nodes = [Node(name=host, index=i, address=addresses[i - 1], netns=f"tlsops-{name}-{i}",
                  veth=veth_name(name, i), unit=f"tlsops-{name}-{i}", dir=str(state_dir / "nodes" / host))
             for i, host in enumerate(hosts, start=1)]
    return NodeSet(name=name, state_dir=str(state_dir), subnet=subnet, group=group, rootfs="",
                   cgroup_layout=cgroup_layout(), ssh_key=str(state_dir / "id_ed25519"), nodes=nodes)


# ---------------------------------------------------------------------------
# One node: filesystem, files, boot


def mount_overlay(node: Node, rootfs: Path) -> None:
    """Overlay over the shared tree; upper on tmpfs when the state dir is itself an overlay."""
    base = Path(node.dir)
    rw = base / "rw"
    for sub in ("rw", "merged"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    if not is_mounted(rw) and fs_type(rw) == "overlayfs":  # overlayfs cannot be an upper layer
        run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=2g", "tmpfs", str(rw)])
    for sub in ("upper", "work"):
        (rw / sub).mkdir(exist_ok=True)
    if not is_mounted(node.merged):
        opts = f"lowerdir={rootfs},upperdir={rw / 'upper'},workdir={rw / 'work'}"
        run(["mount", "-t", "overlay", "overlay", "-o", opts, str(node.merged)])


def write_node_files(nodeset: NodeSet, node: Node, public_key: str) -> None:
    """Identity of one node, written through its overlay into its upper layer."""
    root = node.merged
    _write(root / "etc/hostname", f"{node.name}\n")
    _write(root / "etc/hosts", hosts_file(nodeset, node))
    _write(root / "etc/machine-id", uuid.uuid4().hex + "\n", 0o444)
    _write(root / "root/.ssh/authorized_keys", public_key, 0o600)
    (root / "root/.ssh").chmod(0o700)
    for kind in ("ed25519", "ecdsa"):
        key = root / f"etc/ssh/ssh_host_{kind}_key"
        if not key.exists():
            run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"root@{node.name}", "-f", str(key)])


def hosts_file(nodeset: NodeSet, node: Node) -> str:
    lines = ["127.0.0.1\tlocalhost", f"127.0.1.1\t{node.name}", "::1\tlocalhost ip6-localhost ip6-loopback",
             f"{nodeset.host_address}\ttlsops-host"]
    lines += [f"{other.address}\t{other.name}" for other in nodeset.nodes if other is not node]
    return "# tlsops node lab\n" + "\n".join(lines) + "\n"


#: Runs in the launching shell: join the node's own cgroup, record its PID, exec.
#: ``$$`` stays the PID after exec, so the pidfile names nspawn itself.
LAUNCHER = 'for f in $TLSOPS_CGROUP_PROCS; do echo $$ > "$f"; done; echo $$ > "$TLSOPS_PIDFILE"; exec "$@"'


def nspawn_argv(nodeset: NodeSet, node: Node) -> list[str]:
    # The machine name keys host-wide paths (/run/systemd/nspawn/propagate/<machine>):
    # it must be unique across node sets, so it is the set-qualified unit name.
    argv = ["systemd-nspawn", "--boot", f"--directory={node.merged}", f"--machine={node.unit}",
            f"--hostname={node.name}",
            "--register=no", "--keep-unit", "--console=passive", "--link-journal=no",
            "--resolv-conf=off", "--timezone=off", f"--network-namespace-path=/run/netns/{node.netns}"]
    if nodeset.cgroup_layout == "systemd":
        scope = ["systemd-run", "--scope", "--quiet", "--collect", f"--unit={node.unit}"]
        return [*scope, *argv]
    return argv


def launch(nodeset: NodeSet, node: Node) -> None:
    """Start systemd-nspawn detached (setsid, stdin /dev/null) in its own cgroup."""
    procs = []
    for directory in cgroup_dirs(node.unit, nodeset.cgroup_layout):
        remove_cgroup(directory)  # a stale one from an interrupted run
        directory.mkdir(parents=True, exist_ok=True)
        procs.append(str(directory / "cgroup.procs"))
    pidfile = Path(node.dir) / "nspawn.pid"
    pidfile.unlink(missing_ok=True)
    console = Path(nodeset.state_dir) / "logs" / f"{node.name}.console.log"
    console.parent.mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ.get("PATH", NODE_PATH), "LANG": "C.UTF-8",
           "TLSOPS_CGROUP_PROCS": " ".join(procs), "TLSOPS_PIDFILE": str(pidfile),
           # Nodes get a pure cgroup2 tree even on a hybrid host: what real Debian 12
           # and 13 hosts have, and systemd 256+ (Debian 13's nodes) refuses cgroup v1.
           "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": os.environ.get("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", "1")}
    with console.open("ab") as out:
        subprocess.run(["setsid", "--fork", "sh", "-c", LAUNCHER, "sh", *nspawn_argv(nodeset, node)],
                       stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                       check=True, timeout=30)
    node.nspawn_pid, node.leader_pid, node.state = _read_pidfile(pidfile), 0, "booting"


def _read_pidfile(pidfile: Path, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            return int(pidfile.read_text().strip())
        time.sleep(0.02)
    raise NodesError(f"nspawn did not start (no {pidfile})")


def find_leader(node: Node) -> int:
    """The container's init: the child of nspawn that is PID 1 in its namespace."""
    return next((pid for pid in children(node.nspawn_pid) if is_container_init(pid)), 0)


def is_our_nspawn(node: Node) -> bool:
    """Only signal a PID that is still this node's nspawn (PIDs get reused)."""
    argv = cmdline(node.nspawn_pid) if node.nspawn_pid else []
    return pid_alive(node.nspawn_pid) and f"--directory={node.merged}" in argv


def system_state(node: Node) -> str:
    """``systemctl is-system-running`` inside the node ('' while not answering)."""
    proc = nsenter(node, ["systemctl", "is-system-running"], timeout=10, check=False)
    return proc.stdout.strip()


def ssh_banner(address: str, timeout: float = 1.0) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((address, 22), timeout=timeout) as sock:
        sock.settimeout(timeout)
        return sock.recv(64).startswith(b"SSH-")
    return False


def wait_booted(nodeset: NodeSet, nodes: list[Node], started: float, timeout: float = BOOT_TIMEOUT) -> None:
    """Wait until every node's systemd is running (or degraded) and its sshd answers."""
    pending = list(nodes)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for node in list(pending):
            if _boot_step(node):
                node.boot_seconds = round(time.monotonic() - started, 2)
                pending.remove(node)
        time.sleep(0.1 if pending else 0)
    if pending:
        states = {n.name: n.state for n in pending}
        raise NodesError(f"nodes did not boot within {timeout:.0f}s: {states}; "
                         f"console logs in {nodeset.state_dir}/logs/")


def _boot_step(node: Node) -> bool:
    """Advance one node's boot check; True once it is ready."""
    if not pid_alive(node.nspawn_pid):
        raise NodesError(f"systemd-nspawn of {node.name} exited; see its console log")
    if not node.leader_pid:
        node.leader_pid = find_leader(node)
        return False
    state = system_state(node)
    if state not in ("running", "degraded"):
        node.state = state or "booting"
        return False
    if not ssh_banner(node.address):
        node.state = f"{state}, waiting for sshd"
        return False
    node.state = state
    if state == "degraded":
        failed = nsenter(node, ["systemctl", "--failed", "--plain", "--no-legend"], check=False).stdout
        node.failed_units = [line.split()[0] for line in failed.splitlines() if line.strip()]
        log(f"{node.name} booted degraded: {node.failed_units}")
    return True


# ---------------------------------------------------------------------------
# ssh, inventories


def ensure_ssh_key(path: Path) -> str:
    """The set's client key (ed25519, no passphrase); returns the public half."""
    if not path.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "tlsops-node-lab", "-f", str(path)])
    return path.with_suffix(".pub").read_text(encoding="utf-8")


#: Nodes are new hosts on every `up`, at addresses reused between runs: host keys
#: cannot be pinned in the user's known_hosts (the state dir's known_hosts has them).
SSH_OPTIONS = ("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
               "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5")


def ssh_argv(nodeset: NodeSet, node: Node, command: t.Sequence[str] = ()) -> list[str]:
    """An ssh command line that logs into ``node`` as root with the set's key."""
    return ["ssh", "-i", nodeset.ssh_key, "-o", "BatchMode=yes", *SSH_OPTIONS, f"root@{node.address}", *command]


def verify_ssh(nodeset: NodeSet, node: Node) -> None:
    """Log in for real once: Ansible will need key authentication, not just a banner."""
    proc = run(ssh_argv(nodeset, node, ["systemctl", "is-system-running"]), check=False, timeout=30)
    if proc.stdout.strip() not in ("running", "degraded"):
        raise NodesError(f"ssh root@{node.address} failed: {proc.stderr.strip() or proc.stdout.strip()}")


def write_inventories(nodeset: NodeSet) -> None:
    """inventory.ini, inventory.yml and known_hosts in the state dir."""
    state = Path(nodeset.state_dir)
    common = {"ansible_user": "root", "ansible_port": 22, "ansible_ssh_private_key_file": nodeset.ssh_key,
              "ansible_python_interpreter": "/usr/bin/python3", "ansible_ssh_common_args": " ".join(SSH_OPTIONS)}
    ini = [f"[{nodeset.group}]"]
    ini += [f"{n.name} ansible_host={n.address} tlsops_node_index={n.index}" for n in nodeset.nodes]
    ini += ["", f"[{nodeset.group}:vars]"]
    ini += [f"{k}='{v}'" if " " in str(v) else f"{k}={v}" for k, v in common.items()]
    _write(state / "inventory.ini", "\n".join(ini) + "\n")
    hosts = {n.name: {"ansible_host": n.address, "tlsops_node_index": n.index} for n in nodeset.nodes}
    inventory = {"all": {"children": {nodeset.group: {"hosts": hosts, "vars": common}},
                         "vars": {"tlsops_lab_host_address": nodeset.host_address}}}
    # JSON is valid YAML, and keeps this tool free of PyYAML.
    _write(state / "inventory.yml", json.dumps(inventory, indent=2) + "\n")
    _write(state / "known_hosts", known_hosts(nodeset))


def write_instance_config(nodeset: NodeSet, path: Path) -> None:
    """Molecule's instance config (``molecule_instance_config``): how to reach each node.

    JSON is YAML; the header line is what molecule's own templates write.
    """
    instances = [{"instance": n.name, "address": n.address, "user": "root", "port": 22,
                  "identity_file": nodeset.ssh_key} for n in nodeset.nodes]
    _write(path, "# Molecule managed\n\n" + json.dumps(instances, indent=2) + "\n", 0o600)


def known_hosts(nodeset: NodeSet) -> str:
    lines = []
    for node in nodeset.nodes:
        for pub in sorted(node.merged.glob("etc/ssh/ssh_host_*_key.pub")):
            kind, key = pub.read_text(encoding="utf-8").split()[:2]
            lines.append(f"{node.address},{node.name} {kind} {key}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# Commands


def nsenter(node: Node, argv: t.Sequence[str], *, timeout: float = 600.0, check: bool = True,
            capture: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command inside a node with a clean environment (no venv or PYTHONPATH leaks)."""
    if not node.leader_pid or not pid_alive(node.leader_pid):
        raise NodesError(f"node {node.name} is not running")
    env = {"PATH": NODE_PATH, "LANG": "C.UTF-8", "TERM": os.environ.get("TERM", "dumb")}
    full = ["nsenter", "-t", str(node.leader_pid), "-a", "--", *argv]
    if capture:
        return run(full, check=check, timeout=timeout, env=env)
    proc = subprocess.run(full, env=env, timeout=timeout, check=False)
    if check and proc.returncode:
        raise NodesError(f"{' '.join(argv)} failed in {node.name} ({proc.returncode})")
    return subprocess.CompletedProcess(full, proc.returncode, "", "")


def node_exec(state_dir: str | Path, ref: str, argv: t.Sequence[str], *, check: bool = True,
              timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in node ``ref`` (name, index or address) and capture its output."""
    nodeset = load_nodes(state_dir)
    return nsenter(nodeset.node(ref), argv, timeout=timeout, check=check)


def up(name: str, state_dir: str | Path, count: int = 2, hosts: t.Sequence[str] | None = None,
       subnet: str = DEFAULT_SUBNET, group: str = "nodes", timeout: float = BOOT_TIMEOUT,
       flavor: str = "") -> NodeSet:
    """Boot a set of nodes and write nodes.json and the inventories; returns the set.

    ``flavor="lab"`` boots them from the tree with :data:`LAB_PACKAGES` as well.
    """
    require_root()
    state = Path(state_dir).resolve()
    host_names = _host_names(name, count, hosts)
    _check_inputs(name, state, subnet)
    rootfs = build_rootfs(flavor=flavor)
    state.mkdir(parents=True, exist_ok=True)
    with locked(RUN_DIR / "lock"):
        _clear_stale(name, state)
        nodeset = plan(name, host_names, state, subnet, group)
        nodeset.rootfs = str(rootfs)
        _sweep(name, state, nodeset.cgroup_layout)  # leftovers no record names any more
        save(nodeset)  # before creating anything: `down` can undo a half-done `up`
        ensure_bridge(subnet)
        for node in nodeset.nodes:
            plug_node(node.netns, node.veth, f"{node.address}/24")
    try:
        _boot_all(nodeset, rootfs, timeout)
    except BaseException:
        log("boot failed; taking the node set down again")
        with contextlib.suppress(Exception):
            down(state)
        raise
    return nodeset


def _host_names(name: str, count: int, hosts: t.Sequence[str] | None) -> list[str]:
    names = list(hosts) if hosts else [f"{name}-{i}" for i in range(1, count + 1)]
    bad = [h for h in names if not HOST_RE.match(h)]
    if bad or not names or len(set(names)) != len(names):
        raise NodesError(f"node names must be unique, lower case letters, digits and '-': {names}")
    return names


def _check_inputs(name: str, state: Path, subnet: str) -> None:
    if not NAME_RE.match(name):
        raise NodesError(f"set name {name!r}: lower case letters, digits and '-', at most 31")
    if UNSAFE_PATH_RE.search(str(state)):
        raise NodesError(f"state dir {state}: no spaces, commas, colons or '=' (overlay options)")
    if not re.fullmatch(r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})", subnet):
        raise NodesError(f"subnet {subnet!r}: give the first three octets, e.g. {DEFAULT_SUBNET}")


def _clear_stale(name: str, state: Path) -> None:
    """Undo what an earlier run of this set left: same state dir, or a dead one elsewhere."""
    for other in registered_sets():
        if other.name != name:
            continue
        if other.state_dir != str(state) and any(is_our_nspawn(n) for n in other.nodes):
            raise NodesError(f"node set {name!r} is running from {other.state_dir}: `down` it first")
        log(f"cleaning up what an earlier run of {name!r} left in {other.state_dir}")
        _teardown(other)
    if set_file(state).exists():
        with contextlib.suppress(NodesError, ValueError, KeyError, TypeError):
            _teardown(load_nodes(state))


def _boot_all(nodeset: NodeSet, rootfs: Path, timeout: float) -> None:
    public_key = ensure_ssh_key(Path(nodeset.ssh_key))
    for node in nodeset.nodes:
        rm_tree(Path(node.dir))  # a fresh upper layer: every `up` is a fresh host
        mount_overlay(node, rootfs)
        write_node_files(nodeset, node, public_key)
    started = time.monotonic()
    for node in nodeset.nodes:
        launch(nodeset, node)
    save(nodeset)
    wait_booted(nodeset, nodeset.nodes, started, timeout)
    for node in nodeset.nodes:
        verify_ssh(nodeset, node)
    write_inventories(nodeset)
    save(nodeset)
    log(f"{len(nodeset.nodes)} node(s) up in {time.monotonic() - started:.1f}s: "
        + ", ".join(f"{n.name}={n.address}" for n in nodeset.nodes))


def stop_node(state_dir: str | Path, ref: str, unplug: bool = False) -> Node:
    """Power one node off cleanly, keeping its disk (upper layer) and its address."""
    nodeset = load_nodes(state_dir)
    node = nodeset.node(ref)
    _power_off([node])
    for directory in cgroup_dirs(node.unit, nodeset.cgroup_layout):
        remove_cgroup(directory)
    if unplug and link_exists(node.veth):
        run(["ip", "link", "set", node.veth, "down"])  # connections time out instead of being refused
    node.state, node.nspawn_pid, node.leader_pid = "stopped", 0, 0
    save(nodeset)
    return node


def start_node(state_dir: str | Path, ref: str, timeout: float = BOOT_TIMEOUT) -> Node:
    """Boot a stopped node again from its own disk."""
    nodeset = load_nodes(state_dir)
    node = nodeset.node(ref)
    if is_our_nspawn(node):
        return node
    if link_exists(node.veth):
        run(["ip", "link", "set", node.veth, "up"])
    mount_overlay(node, Path(nodeset.rootfs))
    started = time.monotonic()
    launch(nodeset, node)
    save(nodeset)
    wait_booted(nodeset, [node], started, timeout)
    save(nodeset)
    return node


def _power_off(nodes: list[Node]) -> None:
    """SIGTERM makes nspawn power its container off cleanly; SIGKILL after STOP_TIMEOUT.

    Besides the recorded PID, any systemd-nspawn booted on the node's own overlay
    counts (an interrupted ``up`` may not have recorded it).
    """
    pids = sorted({pid for node in nodes for pid in _nspawns_of(node)})
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if pid_alive(pid):
            log(f"systemd-nspawn {pid} did not power off within {STOP_TIMEOUT:.0f}s: SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _nspawns_of(node: Node) -> list[int]:
    """Live systemd-nspawn processes booted on this node's overlay or in its namespace."""
    markers = {f"--directory={node.merged}"}
    if node.netns:
        markers.add(f"--network-namespace-path=/run/netns/{node.netns}")
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            argv = cmdline(int(entry.name))
            if argv and argv[0].endswith("systemd-nspawn") and markers.intersection(argv):
                found.append(int(entry.name))
    return [pid for pid in found if pid_alive(pid)]


def _orphans(name: str, state: Path) -> list[Node]:
    """Nodes no record names any more: this set's namespaces, veths and overlays.

    Names are deterministic (``tlsops-<name>-<i>``, :func:`veth_name`), so what a
    lost or shorter record misses is still found, and nothing else is.
    """
    prefix = f"tlsops-{name}-"
    netns_dir = Path("/run/netns")
    names = [p.name for p in netns_dir.iterdir()] if netns_dir.is_dir() else []
    indexes = {int(n[len(prefix):]) for n in names if n.startswith(prefix) and n[len(prefix):].isdigit()}
    veth_prefix = veth_name(name, 0)[:-1]
    indexes |= {int(link["ifname"][len(veth_prefix):]) for link in ip_json("link", "show")
                if link.get("ifname", "").startswith(veth_prefix) and link["ifname"][len(veth_prefix):].isdigit()}
    found = [Node(name=f"{prefix}{i}", index=i, address="", netns=f"{prefix}{i}", veth=veth_name(name, i),
                  unit=f"{prefix}{i}", dir=str(state / "nodes" / f".orphan-{i}")) for i in sorted(indexes)]
    nodes_dir = state / "nodes"
    if nodes_dir.is_dir():
        found += [Node(name=d.name, index=0, address="", netns="", veth="", unit="", dir=str(d))
                  for d in sorted(nodes_dir.iterdir()) if d.is_dir()]
    return found


def _sweep(name: str, state: Path, layout: str) -> None:
    """Take down whatever :func:`_orphans` finds."""
    orphans = _orphans(name, state)
    _power_off(orphans)
    for node in orphans:
        _teardown_node(node, layout)


def _teardown_node(node: Node, layout: str) -> None:
    """Undo everything one node's plan names; each step tolerates it being gone already."""
    if node.unit:
        for directory in cgroup_dirs(node.unit, layout):
            remove_cgroup(directory)
        with contextlib.suppress(OSError):  # nspawn may leave this empty directory behind
            Path("/run/systemd/nspawn/propagate", node.unit).rmdir()
    _unmount_under(Path(node.dir))
    if node.netns and node.veth:
        unplug_node(node.netns, node.veth)
    if not any(m.mountpoint.startswith(node.dir + "/") for m in mounts()):
        for sub in ("merged", "rw", "nspawn.pid"):
            rm_tree(Path(node.dir) / sub)
    node.state, node.nspawn_pid, node.leader_pid = "down", 0, 0


def _teardown(nodeset: NodeSet) -> None:
    """Power a whole set off (in parallel), then undo each node; drop its registry entry."""
    _power_off(nodeset.nodes)
    for node in nodeset.nodes:
        _teardown_node(node, nodeset.cgroup_layout)
    for parent in {d.parent for node in nodeset.nodes for d in cgroup_dirs(node.unit, nodeset.cgroup_layout)}:
        with contextlib.suppress(OSError):
            parent.rmdir()  # tlsops-nodes/, once no node set uses it
    (RUN_DIR / "sets" / f"{nodeset.name}.json").unlink(missing_ok=True)


def down(state_dir: str | Path) -> None:
    """Take a node set down; safe to run twice and after an interrupted ``up``."""
    require_root()
    state = Path(state_dir).resolve()
    with locked(RUN_DIR / "lock"):
        if set_file(state).exists():
            nodeset = load_nodes(state)
            _teardown(nodeset)
            set_file(state).rename(state / "nodes.down.json")
        for other in registered_sets():  # registry entry whose nodes.json was lost
            if other.state_dir == str(state):
                _teardown(other)
        if not any(set_is_live(s) for s in registered_sets()):
            remove_bridge_if_unused()


def collect_garbage() -> list[str]:
    """Take down every registered set none of whose nodes runs; returns their names.

    For CI and after a crash: what an interrupted run left (namespaces, veths,
    mounts, cgroups, the bridge) goes, while sets that still run are not touched.
    """
    require_root()
    removed = []
    with locked(RUN_DIR / "lock"):
        for nodeset in registered_sets():
            if not any(_nspawns_of(node) for node in nodeset.nodes):
                log(f"removing stale node set {nodeset.name!r} ({nodeset.state_dir})")
                _teardown(nodeset)
                removed.append(nodeset.name)
        if not any(set_is_live(s) for s in registered_sets()):
            remove_bridge_if_unused()
    return removed


def status(state_dir: str | Path) -> dict[str, t.Any]:
    """nodes.json with each node's liveness checked now."""
    nodeset = load_nodes(state_dir)
    data = nodeset.to_json()
    for entry, node in zip(data["nodes"], nodeset.nodes):
        entry["alive"] = is_our_nspawn(node)
        entry["system_state"] = system_state(node) if entry["alive"] and node.leader_pid else ""
    return data


# ---------------------------------------------------------------------------
# CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("rootfs", help="build the cached root filesystem if missing or stale")
    build.add_argument("--force", action="store_true", help="rebuild even if current")
    build.add_argument("--flavor", choices=["lab"], default="", help="the tree with LAB_PACKAGES as well")
    start = sub.add_parser("up", help="boot a node set")
    start.add_argument("--name", required=True, help="set name (netns tlsops-<name>-<i>)")
    count = start.add_mutually_exclusive_group()
    count.add_argument("--count", type=int, default=2, help="nodes <name>-1..<name>-N (default 2)")
    count.add_argument("--hosts", help="comma-separated node names instead of --count")
    start.add_argument("--state-dir", required=True)
    start.add_argument("--subnet", default=DEFAULT_SUBNET, help="first three octets (default %(default)s)")
    start.add_argument("--group", default="nodes", help="inventory group (default %(default)s)")
    start.add_argument("--timeout", type=float, default=BOOT_TIMEOUT, help="boot timeout, seconds")
    start.add_argument("--json", action="store_true", help="print nodes.json on stdout")
    start.add_argument("--flavor", choices=["lab"], default="", help="boot from the tree with LAB_PACKAGES as well")
    start.add_argument("--instance-config", type=Path, help="also write molecule's instance config here")
    stop = sub.add_parser("down", help="power off and remove a node set (idempotent)")
    stop.add_argument("--state-dir", required=True)
    run_in = sub.add_parser("exec", help="run a command in a node (nsenter)")
    run_in.add_argument("--state-dir", required=True)
    run_in.add_argument("node")
    run_in.add_argument("argv", nargs=argparse.REMAINDER)
    for verb in ("stop", "start"):
        one = sub.add_parser(verb, help=f"{verb} one node, keeping its disk and address")
        one.add_argument("--state-dir", required=True)
        one.add_argument("node")
        if verb == "stop":
            one.add_argument("--unplug", action="store_true", help="also take its link down")
    sub.add_parser("gc", help="take down every registered node set none of whose nodes runs")
    show = sub.add_parser("status", help="print nodes.json with liveness")
    show.add_argument("--state-dir", required=True)
    return parser


def main(argv: t.Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except NodesError as exc:
        print(f"nodes: error: {exc}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "rootfs":
        print(build_rootfs(force=args.force, flavor=args.flavor))
    elif args.command == "up":
        hosts = args.hosts.split(",") if args.hosts else None
        nodeset = up(args.name, args.state_dir, args.count, hosts, args.subnet, args.group, args.timeout,
                     args.flavor)
        if args.instance_config:
            write_instance_config(nodeset, args.instance_config)
        if args.json:
            print(json.dumps(nodeset.to_json(), indent=2))
    elif args.command == "down":
        down(args.state_dir)
    elif args.command == "exec":
        command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        node = load_nodes(args.state_dir).node(args.node)
        return nsenter(node, command or ["/bin/bash", "-l"], capture=False, check=False).returncode
    elif args.command == "stop":
        stop_node(args.state_dir, args.node, args.unplug)
    elif args.command == "start":
        start_node(args.state_dir, args.node)
    elif args.command == "gc":
        collect_garbage()
    elif args.command == "status":
        print(json.dumps(status(args.state_dir), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
