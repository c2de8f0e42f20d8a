# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""lego from Debian (``apt-get install lego``), ``run --http``: one process per certificate."""

from __future__ import annotations

import os
import shutil
import subprocess
import typing as t
from pathlib import Path

from . import INSTALL_TIMEOUT, Target, Unavailable, last_line, run

NAME = "lego"


def install() -> str:
    if shutil.which("lego") is None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        try:
            proc = subprocess.run(["apt-get", "install", "-y", "-q", "lego"], capture_output=True, text=True,
                                  env=env, timeout=INSTALL_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise Unavailable(f"apt-get install lego: {exc}") from exc
        if proc.returncode != 0 or shutil.which("lego") is None:
            raise Unavailable(f"apt-get install lego failed: {last_line(proc.stderr)}")
    # Debian's build says "lego version dev"; the package knows its version.
    proc = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "lego"], capture_output=True, text=True,
                          check=False)
    return f"lego {proc.stdout.strip() or 'unknown'} (Debian package)"


class Peer:
    def __init__(self, target: Target, work: Path) -> None:
        self.target = target
        self.home = work / "lego"
        self.env = {"LEGO_CA_CERTIFICATES": target.ca_path}

    def argv(self, name: str) -> list[str]:
        return ["lego", "--server", self.target.directory, "--accept-tos", "--email", "bench@bench.example",
                "--path", str(self.home), "--key-type", "ec256", "--http",
                "--http.port", f"127.0.0.1:{self.target.http_port}", "--domains", name, "run"]

    def warm(self) -> None:
        self.issue(["warm-lego.bench.example"])

    def issue(self, names: t.Sequence[str]) -> float:
        return sum(run(self.argv(name), env=self.env) for name in names)
