# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The time part of the renewal rule (rules 3 and 4 of :mod:`renewal`): days left against
``remaining_days`` or the lifetime. Standard library only, so that the controller's filters
(the fleet's plan, report and metrics) import it without ``cryptography``: Ansible imports a
filter plugin again in every worker process that uses it.
"""

from __future__ import annotations

import datetime as dt

SHORT_LIFETIME_DAYS = 10.0
DAY_SECONDS = 86400.0


def lifetime_threshold(lifetime: float) -> float:
    """Days left below which the lifetime rule renews: a third, or half under 10 days."""
    return lifetime / 2 if lifetime < SHORT_LIFETIME_DAYS else lifetime / 3


def _left(days: float, lifetime: float) -> str:
    return f"{days:.1f} days left of {lifetime:.1f}"


def explicit_rule(days: float, lifetime: float, remaining_days: float | None) -> tuple[bool, str] | None:
    """``remaining_days`` when set and below the lifetime (else it would renew on every run)."""
    if remaining_days is None or remaining_days >= lifetime:
        return None
    if days < remaining_days:
        return True, f"{_left(days, lifetime)}, fewer than remaining_days ({remaining_days:g})"
    return False, f"{_left(days, lifetime)}; remaining_days ({remaining_days:g}) decides"


def lifetime_rule(days: float, lifetime: float, remaining_days: float | None) -> tuple[bool, str]:
    threshold = lifetime_threshold(lifetime)
    note = "" if remaining_days is None else (
        f"; remaining_days ({remaining_days:g}) is not below the certificate's lifetime, "
        "so the lifetime rule decides")
    if days < threshold:
        part = "half" if lifetime < SHORT_LIFETIME_DAYS else "a third"
        return True, f"{_left(days, lifetime)}, less than {part} of its lifetime ({threshold:.1f} days){note}"
    return False, f"{_left(days, lifetime)}; the lifetime rule renews below {threshold:.1f}{note}"


def days_and_lifetime(not_before: dt.datetime, not_after: dt.datetime, now: dt.datetime) -> tuple[float, float]:
    """(days left, lifetime in days)."""
    return (not_after - now).total_seconds() / DAY_SECONDS, (not_after - not_before).total_seconds() / DAY_SECONDS


def due_by_time(not_before: dt.datetime, not_after: dt.datetime, remaining_days: float | None,
                now: dt.datetime) -> tuple[bool, str]:
    """Rules 3 and 4 alone (no ARI): whether a certificate valid over these dates is due, and why."""
    days, lifetime = days_and_lifetime(not_before, not_after, now)
    return explicit_rule(days, lifetime, remaining_days) or lifetime_rule(days, lifetime, remaining_days)
