# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The renewal rule, as a pure function of the file and what is asked (docs/lifetimes.md).

In order, the first that applies decides:

1. no file, an unusable bundle, other names, another key type, or a profile other
   than the one recorded in the bundle: renew;
2. the CA's renewal window (ARI, RFC 9773 section 4.2), when the CA offers one: renew
   once the chosen point of the window has passed, else keep - unless an explicit
   ``remaining_days`` (3) asks for an earlier renewal;
3. an explicit ``remaining_days`` below the certificate's lifetime: renew when fewer
   days are left;
4. the lifetime rule: renew when less than a third of the certificate's own lifetime
   is left (half of it for lifetimes under 10 days).

A ``remaining_days`` at or above the lifetime would renew on every run, so the
lifetime rule decides instead and the reason says so. ``force`` renews anyway.

The rule reads a bundle through :class:`Current`: the facts of the file (its leaf's
dates, names, key type and serial, what keeps it from being used, the profile it
records), which :func:`facts_of` computes from the bytes and the directory's index
keeps (_index.py), and the parsed bundle only when an ARI window or an order needs it.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from dataclasses import dataclass, field

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import profiles
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.ari import RenewalWindow, cert_id
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.timing import (
    days_and_lifetime,
    explicit_rule,
    lifetime_rule,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import PemError
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._index import RENEWAL_KIND
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import (
    Bundle,
    CertInfo,
    parse_bundle,
    structure_problem,
    validity_problem,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._time import isoformat

#: Below this lifetime, renew at half of it rather than at a third (6-day certificates).


#: The index's name for the facts below (_index.BundleIndex.get).
FACTS_KIND = RENEWAL_KIND


def _parsed(data: bytes) -> tuple[Bundle | None, str]:
    try:
        bundle = parse_bundle(data)
        bundle.info()
    except PemError as exc:
        return None, exc.msg
    return bundle, ""


def _facts(bundle: Bundle, data: bytes) -> dict[str, t.Any]:
    return {
        "info": bundle.info().to_json(),
        "problem": structure_problem(bundle),
        "profile": profiles.recorded(data),
        "cert_id": cert_id(bundle.leaf),
    }


def facts_of(data: bytes) -> dict[str, t.Any]:
    """What the rule needs of a bundle file, as JSON for the index: ``{"unusable": why}`` for
    bytes that are no bundle; else the leaf's facts, what keeps the bundle from use whatever
    the time (or None), the profile it records and its ARI certID (or None)."""
    bundle, why = _parsed(data)
    return _facts(bundle, data) if bundle is not None else {"unusable": why}


def facts_of_checked(data: bytes) -> dict[str, t.Any]:
    """:func:`facts_of` for a bundle whose key and chain were checked already (a deploy writes
    no other): the same facts, but the key is not loaded again and the structure is taken as
    good. What haproxy_runtime_cert keeps in the index for each bundle it writes."""
    try:
        bundle = parse_bundle(data, require_key=False, load_key=False)
        info = bundle.info()
    except PemError as exc:
        return {"unusable": exc.msg}
    return {"info": info.to_json(), "problem": None, "profile": profiles.recorded(data), "cert_id": cert_id(bundle.leaf)}


@dataclass
class Current:
    """A bundle file that parses, as the rule reads it: its facts now, and the parsed bundle
    (the key, for ``reuse_key``) on first use, from ``load``."""

    _info: CertInfo
    problem: str | None
    profile: str | None
    cert_id: str | None
    load: t.Callable[[], Bundle] = field(repr=False)
    _bundle: Bundle | None = field(default=None, init=False, repr=False)

    def info(self) -> CertInfo:
        return self._info

    def bundle(self) -> Bundle:
        if self._bundle is None:
            self._bundle = self.load()
        return self._bundle


def current(facts: t.Mapping[str, t.Any], load: t.Callable[[], Bundle]) -> Current | str:
    """The file as :class:`Current` from :func:`facts_of`, or why it is unusable. KeyError,
    TypeError or ValueError for facts of another shape (a damaged index)."""
    if "unusable" in facts:
        return f"the current file is unusable ({facts['unusable']})"
    cid = facts["cert_id"]
    return Current(CertInfo.from_json(facts["info"]), facts["problem"], facts["profile"],
                   None if cid is None else str(cid), load)


def current_of(data: bytes) -> Current | str:
    """:func:`current` for bytes at hand, parsed once."""
    bundle, why = _parsed(data)
    if bundle is None:
        return f"the current file is unusable ({why})"
    return current(_facts(bundle, data), lambda: bundle)


@dataclass
class Decision:
    """Whether to order, why, and the current bundle when it is usable."""

    needs_renewal: bool
    reason: str
    bundle: Current | None = None
    by_timing: bool = False  # decided by time left or ARI: the bundle fits what is asked

    def __iter__(self) -> t.Iterator[t.Any]:
        # So callers may unpack ``needs, reason = decide(...)``.
        return iter((self.needs_renewal, self.reason))


def _mismatch(bundle: Current, domains: t.Sequence[str], key_type: str | None, now: dt.datetime) -> str | None:
    """Why the bundle does not fit what is asked, or None."""
    info = bundle.info()
    problem = bundle.problem or validity_problem(info, now)
    if problem:
        return f"the current certificate is unusable ({problem})"
    if set(info.domains) != set(domains):
        return f"the domains differ (the certificate has {', '.join(info.domains) or 'none'})"
    if key_type and info.key_type != key_type:
        return f"the key type differs (the certificate has {info.key_type}, {key_type} is asked)"
    return None


def _profile_changed(had: str | None, profile: str | None) -> str | None:
    """A profile is asked and the bundle records another one (none recorded: next renewal)."""
    if profile and had and had != profile:
        return f"the profile differs (the certificate was ordered with {had!r}, {profile!r} is asked)"
    return None


def _window_for(bundle: Current, window: RenewalWindow | None) -> RenewalWindow | None:
    """The CA's window when it applies: RFC 9773 section 4.1 needs an AKI, and a window
    that opens only after the certificate expired cannot be followed (section 4.2)."""
    if window is None or bundle.cert_id is None or window.start >= bundle.info().not_after:
        return None
    return window


def _ari_rule(bundle: Current, window: RenewalWindow, now: dt.datetime) -> tuple[bool, str]:
    cid = t.cast(str, bundle.cert_id)
    if window.due(cid, now):
        reason = f"the CA's renewal window (ARI) opened at {isoformat(window.start)}"
        return True, reason + (f", see {window.explanation_url}" if window.explanation_url else "")
    return False, f"the CA's renewal window (ARI) says renew after {isoformat(window.renewal_time(cid))}"


def _timing(bundle: Current, remaining_days: float | None, window: RenewalWindow | None,
            now: dt.datetime) -> tuple[bool, str]:
    """Rules 2-4 of the module docstring for a bundle that fits what is asked."""
    info = bundle.info()
    days, lifetime = days_and_lifetime(info.not_before, info.not_after, now)
    explicit = explicit_rule(days, lifetime, remaining_days)
    window = _window_for(bundle, window)
    if window is None:
        return explicit or lifetime_rule(days, lifetime, remaining_days)
    due, reason = _ari_rule(bundle, window, now)
    if not due and explicit is not None and explicit[0]:
        return explicit  # an explicit remaining_days renews earlier than the window
    return due, reason


def decide(
    existing: bytes | Current | str | None,
    domains: t.Sequence[str],
    key_type: str | None,
    remaining_days: float | None = None,
    *,
    profile: str | None = None,
    force: bool = False,
    ari_window: RenewalWindow | None = None,
    now: dt.datetime | None = None,
) -> Decision:
    """Whether to order for ``existing`` (the file's bytes, its :func:`current`, or None when
    there is no file), and which rule decided."""
    now = now or dt.datetime.now(dt.timezone.utc)
    if existing is None:
        return Decision(True, "no certificate yet")
    bundle = current_of(existing) if isinstance(existing, bytes) else existing
    if isinstance(bundle, str):
        return Decision(True, bundle)
    reason = _mismatch(bundle, domains, key_type, now) or _profile_changed(bundle.profile, profile)
    if reason:
        return Decision(True, reason, bundle)
    due, reason = _timing(bundle, remaining_days, ari_window, now)
    if not due and force:
        return Decision(True, "force is set", bundle)
    return Decision(due, reason if due else f"valid, {reason}", bundle, by_timing=True)
