# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Nodes as the fleet filters see them, built from a few words: what each asks for and serves."""

from __future__ import annotations

import datetime as dt
import typing as t

CERT_DIR = "/etc/haproxy/certs"
NOW = dt.datetime(2025, 6, 1, tzinfo=dt.timezone.utc)
FMT = "%Y-%m-%dT%H:%M:%SZ"


def cert(name: str, *domains: str, **extra: t.Any) -> dict[str, t.Any]:
    return {"name": name, "domains": list(domains or [name]), **extra}


def served(name: str, serial: str, left: float, lifetime: float = 90, status: str = "Used",
           now: dt.datetime = NOW, **extra: t.Any) -> dict[str, t.Any]:
    """One entry of haproxy_runtime_cert_info's certificates, ``left`` days before expiry."""
    not_after = now + dt.timedelta(days=left)
    return {"path": f"{CERT_DIR}/{name}.pem", "status": status, "serial": serial,
            "not_before": (not_after - dt.timedelta(days=lifetime)).strftime(FMT), "not_after": not_after.strftime(FMT),
            "days_left": round(left, 1), "domains": [name], "issuer": "/CN=Test CA", **extra}


def node(name: str, certificates: list[dict[str, t.Any]] | None, entries: list[dict[str, t.Any]] | None = None,
         pid: int = 100, version: str = "2.6.12-1+deb12u1") -> dict[str, t.Any]:
    """A node that answered with ``entries``, or (entries None) one that did not."""
    answered = entries is not None
    return {"name": name, "answered": answered, "certificates": certificates, "served": entries or [],
            "process": {"pid": pid, "version": version, "uptime_sec": 60} if answered else None,
            "deployed": None, "process_after": None}
