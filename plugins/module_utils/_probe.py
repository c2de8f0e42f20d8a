# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a host already has, read by one command, and which set-up steps it still needs.

The haproxy role asked the package manager and the service manager on every run, a
module start each on every node (about 5 s each on ten nodes) to learn that nothing was
to be done. One shell command now prints, a line each, HAProxy's version, each package's
dpkg status and the service's systemd state (the role's ``_haproxy_probe_script``, one
line each: ``version <haproxy -v>``, ``package <name> <status>``, ``enabled <state>``,
``active <state>``); :func:`needs` decides from it. What the command cannot tell (no
dpkg, no systemctl, a state it does not know) leaves the step to run, as before: the
probe only ever skips work that is done.
"""

from __future__ import annotations

import re
import typing as t
from dataclasses import dataclass, field

_VERSION = re.compile(r"version ([0-9]+\.[0-9]+(?:\.[0-9]+)?)")


@dataclass(frozen=True)
class Probe:
    """What the command printed: ``packages`` None without dpkg, the states None without systemctl."""

    version: str | None = None
    packages: dict[str, str] | None = None
    enabled: str | None = None
    active: str | None = None
    extra: tuple[str, ...] = field(default=())


def parse(text: str) -> Probe:
    """The probe's output, line by line; lines it does not know are kept in ``extra``."""
    version: str | None = None
    packages: dict[str, str] | None = None
    states: dict[str, str] = {}
    extra: list[str] = []
    for line in text.splitlines():
        word, _sep, rest = line.partition(" ")
        if word == "version":
            found = _VERSION.search(rest)
            version = found.group(1) if found else None
        elif word == "package":
            name, _sep, status = rest.partition(" ")
            packages = {**(packages or {}), name: status.strip()}
        elif word in ("enabled", "active"):
            states[word] = rest.strip()
        elif line.strip():
            extra.append(line)
    return Probe(version, packages, states.get("enabled"), states.get("active"), tuple(extra))


def needs(
    probe: Probe,
    packages: t.Sequence[str],
    *,
    manage_package: bool = True,
    package_state: str = "present",
    manage_service: bool = True,
    service_enabled: bool = True,
) -> dict[str, t.Any]:
    """``install``: the package step must run; ``service``: the service step must run; ``version``."""
    installed = probe.packages is not None and all(probe.packages.get(p) == "installed" for p in packages)
    install = manage_package and (package_state != "present" or not installed or probe.version is None)
    running = probe.active == "active" and probe.enabled == ("enabled" if service_enabled else "disabled")
    return {"install": install, "service": manage_service and not running, "version": probe.version}
