# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Times as the collection reads and reports them: aware, in UTC, printed to the second."""

from __future__ import annotations

import datetime as dt


def as_utc(value: dt.datetime) -> dt.datetime:
    """``value`` in UTC; a naive value (cryptography 38's certificate dates) is taken as UTC."""
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def isoformat(value: dt.datetime) -> str:
    """``2026-12-01T12:00:00Z``: what every result and log line shows."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")
