# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The renewal rule of DESIGN.md, as a pure function of the file and what is asked."""

from __future__ import annotations

import datetime as dt
import typing as t
from dataclasses import dataclass

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.ari import RenewalWindow, cert_id
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import PemError
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import (
    Bundle,
    check_bundle,
    isoformat,
    parse_bundle,
)


@dataclass
class Decision:
    """Whether to order, why, and the current bundle when it is usable."""

    needs_renewal: bool
    reason: str
    bundle: Bundle | None = None

    def __iter__(self) -> t.Iterator[t.Any]:
        # So callers may unpack ``needs, reason = decide(...)``.
        return iter((self.needs_renewal, self.reason))


def _usable_bundle(existing: bytes) -> tuple[Bundle | None, str]:
    try:
        bundle = parse_bundle(existing)
    except PemError as exc:
        return None, f"the current file is unusable ({exc.msg})"
    return bundle, ""


def _mismatch(bundle: Bundle, domains: t.Sequence[str], key_type: str | None, now: dt.datetime) -> str | None:
    """Why the bundle does not fit what is asked, or None."""
    info = bundle.info()
    try:
        check_bundle(bundle, None, now)
    except PemError as exc:
        return f"the current certificate is unusable ({exc.msg})"
    if set(info.domains) != set(domains):
        return f"the domains differ (the certificate has {', '.join(info.domains) or 'none'})"
    if key_type and info.key_type != key_type:
        return f"the key type differs (the certificate has {info.key_type}, {key_type} is asked)"
    return None


def _too_old(bundle: Bundle, remaining_days: float, now: dt.datetime) -> str | None:
    days = bundle.info().days_left(now)
    if days < remaining_days:
        return f"{days:.1f} days left, fewer than remaining_days ({remaining_days:g})"
    return None


def _ari_says(bundle: Bundle, window: RenewalWindow | None, now: dt.datetime) -> str | None:
    """RFC 9773 section 4.2: renew once the chosen point of the suggested window has passed."""
    cid = cert_id(bundle.leaf)
    if window is None or cid is None or not window.due(cid, now):
        return None
    reason = f"the CA's renewal window (ARI) opened at {isoformat(window.start)}"
    return reason + (f", see {window.explanation_url}" if window.explanation_url else "")


def decide(
    existing: bytes | None,
    domains: t.Sequence[str],
    key_type: str | None,
    remaining_days: float,
    *,
    force: bool = False,
    ari_window: RenewalWindow | None = None,
    now: dt.datetime | None = None,
) -> Decision:
    """Renew when missing, unusable, different names or key type, too few days left, ARI says so, or forced."""
    now = now or dt.datetime.now(dt.timezone.utc)
    if existing is None:
        return Decision(True, "no certificate yet")
    bundle, problem = _usable_bundle(existing)
    if bundle is None:
        return Decision(True, problem)
    reason = (
        _mismatch(bundle, domains, key_type, now)
        or _too_old(bundle, remaining_days, now)
        or _ari_says(bundle, ari_window, now)
    )
    if reason:
        return Decision(True, reason, bundle)
    if force:
        return Decision(True, "force is set", bundle)
    return Decision(False, f"valid, {bundle.info().days_left(now):.1f} days left", bundle)
