# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The peers ``bench/run`` measures, each installed the way its users get it and run the way they run it.

Every peer module has ``NAME``, ``install() -> version`` (raises :class:`Unavailable` when it
cannot be had, e.g. offline) and ``Peer(target, work)`` with ``warm()`` (one untimed
certificate: registers the account) and ``issue(names) -> seconds``, the wall time of the
whole processes for those names. ``target`` is the CA side of the lab: pebble's directory, the
CA file of its listener, and the port its HTTP-01 validator connects to, where the peer answers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import typing as t
from dataclasses import dataclass
from pathlib import Path

VENVS = Path(os.environ.get("TLSOPS_BENCH_VENVS", "/var/cache/tlsops-haproxy-acme/bench-venvs"))
INSTALL_TIMEOUT = float(os.environ.get("TLSOPS_BENCH_INSTALL_TIMEOUT", "600"))


class Unavailable(Exception):
    """The peer cannot be installed or run here; the message says why."""


@dataclass
class Target:
    directory: str
    ca_path: str
    http_port: int


def venv(name: str, requirement: str, program: str) -> Path:
    """``<VENVS>/<name>/bin/<program>``, creating the virtualenv with ``requirement`` on demand."""
    home = VENVS / name
    binary = home / "bin" / program
    stamp = home / "bench-requirement.txt"
    if binary.exists() and stamp.exists() and stamp.read_text().strip() == requirement:
        return binary
    shutil.rmtree(home, ignore_errors=True)
    home.parent.mkdir(parents=True, exist_ok=True)
    python = shutil.which("python3") or "python3"
    for argv in ([python, "-m", "venv", str(home)],
                 [str(home / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", requirement]):
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False)
        except subprocess.TimeoutExpired as exc:
            shutil.rmtree(home, ignore_errors=True)
            raise Unavailable(f"{' '.join(argv[:3])}: no answer within {INSTALL_TIMEOUT:.0f} s") from exc
        if proc.returncode != 0:
            shutil.rmtree(home, ignore_errors=True)
            raise Unavailable(f"{' '.join(argv[-2:])} failed: {last_line(proc.stderr)}")
    stamp.write_text(requirement + "\n")
    return binary


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("WARNING: Location")]
    return lines[-1].strip() if lines else "(no output)"


def run(argv: t.Sequence[str], env: t.Mapping[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 900) -> float:
    """Wall time of one process; :class:`RuntimeError` with its last lines when it fails."""
    started = time.perf_counter()
    proc = subprocess.run(list(argv), capture_output=True, text=True, env={**os.environ, **(env or {})},
                          cwd=cwd, timeout=timeout, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise RuntimeError(f"{Path(argv[0]).name} exited {proc.returncode}:\n{tail}")
    return elapsed


def ca_env(ca_path: str) -> dict[str, str]:
    """Trust pebble's listener CA in every library that reads the environment (and nothing else)."""
    return {name: ca_path for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")}
