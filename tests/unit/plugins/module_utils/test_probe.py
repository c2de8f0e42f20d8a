# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The haproxy role's probe: its output read, and which set-up steps still run, as a table."""

from __future__ import annotations

import subprocess
import typing as t
from pathlib import Path

import pytest
import yaml

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _probe as probe

ROOT = Path(__file__).resolve().parents[4]
DONE = ("version HAProxy version 2.6.12-1+deb12u4 2025/04/13 - https://haproxy.org/\n"
        "package haproxy installed\npackage openssl installed\nenabled enabled\nactive active\n")


@pytest.mark.parametrize(("text", "kwargs", "install", "service"), [
    (DONE, {}, False, False),
    (DONE.replace("package openssl installed", "package openssl config-files"), {}, True, False),
    (DONE.replace("package openssl installed", "package openssl "), {}, True, False),
    (DONE, {"package_state": "latest"}, True, False),
    (DONE, {"manage_package": False, "package_state": "latest"}, False, False),
    (DONE.replace("active active", "active inactive"), {}, False, True),
    (DONE.replace("active active", "active failed"), {}, False, True),
    (DONE.replace("enabled enabled", "enabled disabled"), {}, False, True),
    (DONE.replace("enabled enabled", "enabled disabled"), {"service_enabled": False}, False, False),
    (DONE, {"service_enabled": False}, False, True),
    (DONE.replace("active active", "active inactive"), {"manage_service": False}, False, False),
    ("version \n", {}, True, True),  # no dpkg, no systemctl, no HAProxy: every step runs
    ("version \npackage haproxy installed\npackage openssl installed\n", {}, True, True),  # haproxy -v failed
    (DONE.replace("package haproxy installed\n", ""), {}, True, False),  # a package the probe was not asked
])
def test_needs(text: str, kwargs: dict[str, t.Any], install: bool, service: bool) -> None:
    needs = probe.needs(probe.parse(text), ["haproxy", "openssl"], **kwargs)
    assert (needs["install"], needs["service"]) == (install, service)


def test_parse() -> None:
    found = probe.parse(DONE + "\nsomething else\n")
    assert found.version == "2.6.12"
    assert found.packages == {"haproxy": "installed", "openssl": "installed"}
    assert (found.enabled, found.active) == ("enabled", "active")
    assert found.extra == ("something else",)
    assert probe.parse("version HAProxy version 3.2-dev4\n").version == "3.2"


def test_the_role_script_prints_what_parse_reads(tmp_path: Path) -> None:
    """The role's script, run here: a fake haproxy, and this host's dpkg and systemctl if it has them."""
    script = yaml.safe_load((ROOT / "roles" / "haproxy" / "vars" / "main.yml").read_text())["_haproxy_probe_script"]
    fake = tmp_path / "haproxy"
    fake.write_text("#!/bin/sh\necho 'HAProxy version 2.8.5-1 2023/12/07'\necho 'Status: long-term'\n")
    fake.chmod(0o755)
    out = subprocess.run(["sh", "-c", script, "sh", str(fake), "no-such-service", "no-such-package-xyz"],
                         capture_output=True, text=True, check=True).stdout
    found = probe.parse(out)
    assert found.version == "2.8.5" and not found.extra
    if found.packages is not None:
        assert found.packages == {"no-such-package-xyz": ""}
    assert probe.needs(found, ["no-such-package-xyz"])["install"]
