# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ACME profiles: checking a name against the directory, and recording it in the bundle.

A CA that offers profiles lists them in its directory's ``meta.profiles`` (name ->
description) and a new order names one in its ``profile`` field (Let's Encrypt's
``classic``, ``tlsserver``, ``shortlived``; see docs/lifetimes.md).

The profile a certificate was ordered with is written as one line of explanatory
text before the first PEM block of ``<name>.pem`` (RFC 7468 section 5.2 allows text
there; OpenSSL, and so HAProxy, skips it, on disk and over the Runtime API). That
keeps the bundle the one copy of everything the renewal rule needs, with no state
file beside it, and lets a later run notice that another profile is now asked.
"""

from __future__ import annotations

import re
import typing as t

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import ConfigError

HEADER = b"# acme-profile: "
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HEADER_LINE = re.compile(rb"^# acme-profile: ([A-Za-z0-9][A-Za-z0-9._-]{0,63})\r?$", re.MULTILINE)


def check_name(profile: t.Any, cert_name: str | None = None) -> str | None:
    """``profile`` if it is a well-formed name (or None when unset); ConfigError otherwise."""
    if profile is None or profile == "":
        return None
    if not isinstance(profile, str) or not _NAME.fullmatch(profile):  # not 'classic\n'
        raise ConfigError(  # the issuer puts the certificate's name before the message
            f"invalid profile {profile!r}: letters, digits, '.', '_' and '-', at most 64 characters",
            certificate=cert_name,
        )
    return profile


def offered(meta: t.Mapping[str, t.Any]) -> dict[str, str]:
    """The directory's ``meta.profiles`` as name -> description ({} when the CA offers none)."""
    profiles = meta.get("profiles")
    if not isinstance(profiles, dict):
        return {}
    return {str(name): str(text) for name, text in profiles.items()}


def check_offered(profile: str, meta: t.Mapping[str, t.Any], directory_url: str) -> None:
    """ConfigError naming what the CA offers when it does not offer ``profile``."""
    names = offered(meta)
    if profile in names:
        return
    if not names:
        raise ConfigError(
            f"profile {profile!r} is asked, but the CA at {directory_url} offers no profiles "
            "(leave profile unset for this CA)", profile=profile,
        )
    raise ConfigError(
        f"profile {profile!r} is not offered by the CA at {directory_url}; it offers: "
        + ", ".join(sorted(names)), profile=profile, offered=sorted(names),
    )


def recorded(data: bytes | None) -> str | None:
    """The profile written into a bundle by :func:`record`, or None."""
    if not data:
        return None
    head = data.split(b"-----BEGIN", 1)[0]
    match = _HEADER_LINE.search(head)
    return match.group(1).decode() if match else None


def record(data: bytes, profile: str | None) -> bytes:
    """The bundle with its profile line first (none when ``profile`` is None)."""
    return HEADER + profile.encode() + b"\n" + data if profile else data
