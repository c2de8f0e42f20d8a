# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Times as the collection reads and reports them: aware, in UTC, printed to the second."""

from __future__ import annotations

import datetime as dt
import re
import typing as t


def as_utc(value: dt.datetime) -> dt.datetime:
    """``value`` in UTC; a naive value (cryptography 38's certificate dates) is taken as UTC."""
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def isoformat(value: dt.datetime) -> str:
    """``2026-12-01T12:00:00Z``: what every result and log line shows."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


_RFC3339 = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|z|[+-]\d\d:\d\d)$"
)


def parse_time(value: t.Any) -> dt.datetime | None:
    """An RFC 3339 timestamp (any fraction length, ``Z`` or offset) as aware UTC; None if malformed."""
    match = _RFC3339.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    micro = int((match.group(7) or "0")[:6].ljust(6, "0"))
    zone = match.group(8).upper()
    offset = dt.timedelta(0) if zone == "Z" else dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    if zone.startswith("-"):
        offset = -offset
    try:
        local = dt.datetime(year, month, day, hour, minute, second, micro, tzinfo=dt.timezone(offset))
        return local.astimezone(dt.timezone.utc)
    except (ValueError, OverflowError):  # 0001-01-01T00:00:00+01:00 is a time before year 1 in UTC
        return None
