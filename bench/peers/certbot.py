# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""certbot from PyPI in its own virtualenv, ``certonly --standalone``: one process per certificate."""

from __future__ import annotations

import subprocess
import typing as t
from pathlib import Path

from . import Target, Unavailable, ca_env, run, venv

NAME = "certbot"
REQUIREMENT = "certbot==5.8.0"


def install() -> str:
    binary = venv("certbot", REQUIREMENT, "certbot")
    proc = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise Unavailable(f"certbot --version failed: {proc.stderr.strip()}")
    return proc.stdout.strip() or proc.stderr.strip()


class Peer:
    def __init__(self, target: Target, work: Path) -> None:
        self.binary = str(venv("certbot", REQUIREMENT, "certbot"))
        self.target = target
        self.home = work / "certbot"
        self.env = ca_env(target.ca_path)

    def argv(self, name: str) -> list[str]:
        return [self.binary, "certonly", "--standalone", "--non-interactive", "--agree-tos",
                "--register-unsafely-without-email", "--server", self.target.directory,
                "--http-01-port", str(self.target.http_port), "--http-01-address", "127.0.0.1",
                "--config-dir", str(self.home / "config"), "--work-dir", str(self.home / "work"),
                "--logs-dir", str(self.home / "logs"), "--cert-name", name, "-d", name]

    def warm(self) -> None:
        self.issue(["warm-certbot.bench.example"])

    def issue(self, names: t.Sequence[str]) -> float:
        return sum(run(self.argv(name), env=self.env) for name in names)
