# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Problem documents (RFC 7807, RFC 8555 section 6.7) turned into :class:`AcmeProblem`."""

from __future__ import annotations

import datetime as dt
import json
import math
import typing as t

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import AcmeProblem

ACME_ERROR_PREFIX = "urn:ietf:params:acme:error:"


def short_type(problem_type: str) -> str:
    """``badNonce`` for ``urn:ietf:params:acme:error:badNonce``; other URIs unchanged."""
    if problem_type.startswith(ACME_ERROR_PREFIX):
        return problem_type[len(ACME_ERROR_PREFIX):]
    return problem_type or "unknown"


def parse_problem(content: bytes) -> dict[str, t.Any] | None:
    """The problem document in a response body, or None when the body is not one."""
    try:
        data = json.loads(content.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; RecursionError: '[' * 10000
        return None
    if isinstance(data, dict) and isinstance(data.get("type"), str):
        return data
    return None


def _identifier(sub: t.Mapping[str, t.Any]) -> str:
    ident = sub.get("identifier")
    value = ident.get("value") if isinstance(ident, dict) else None
    return value if isinstance(value, str) else "?"


def describe(problem: t.Mapping[str, t.Any]) -> str:
    """One line: ``type: detail`` plus the subproblems per identifier (section 6.7.1)."""
    text = f"{short_type(str(problem.get('type', '')))}: {problem.get('detail') or 'no detail given'}"
    subs = problem.get("subproblems")
    if isinstance(subs, list) and subs:
        parts = [
            f"{_identifier(sub)}: {short_type(str(sub.get('type', '')))}: {sub.get('detail', '')}"
            for sub in subs
            if isinstance(sub, dict)
        ]
        text += " [" + "; ".join(parts) + "]"
    return text


def utc_text(epoch: float) -> str:
    """``2026-12-01T09:41:32Z`` for seconds since the epoch."""
    try:
        return dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError):  # inf, nan, or beyond year 9999
        return "a time out of range"


def retry_note(retry_after: float | None, retry_at: float | None = None) -> str:
    """`` (the server asks to retry after 60 s, at 2026-12-01T09:42:32Z)``, or '' without Retry-After."""
    if retry_after is None:
        return ""
    when = f", at {utc_text(retry_at)}" if retry_at is not None else ""
    # A Retry-After of 400 digits reads as inf seconds: still a message, not an OverflowError.
    seconds = f"{int(retry_after)} s" if math.isfinite(retry_after) else "an unbounded time"
    return f" (the server asks to retry after {seconds}{when})"


def problem_error(
    status: int,
    content: bytes,
    url: str,
    retry_after: float | None = None,
    retry_at: float | None = None,
    **context: t.Any,
) -> AcmeProblem:
    """The exception for an ACME error response, with a message a user can act on.

    ``retry_at`` (seconds since the epoch) is when ``Retry-After`` allows the next try.
    """
    problem = parse_problem(content)
    if retry_at is not None:
        context.setdefault("retry_at", utc_text(retry_at))
    if problem is None:
        body = content[:200].decode("utf-8", "replace").strip()
        return AcmeProblem(
            f"ACME server answered HTTP {status} for {url}: {body or 'empty body'}{retry_note(retry_after, retry_at)}",
            status=status, retry_after=retry_after, url=url, **context,
        )
    msg = f"ACME server error {describe(problem)}{retry_note(retry_after, retry_at)}"
    listed = problem.get("subproblems")
    subproblems = [s for s in listed if isinstance(s, dict)] if isinstance(listed, list) else []
    return AcmeProblem(
        msg,
        problem_type=str(problem.get("type", "")),
        detail=str(problem.get("detail", "")),
        status=status,
        subproblems=subproblems,
        retry_after=retry_after,
        url=url,
        **context,
    )
