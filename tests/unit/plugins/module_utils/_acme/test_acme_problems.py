# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Problem documents (RFC 8555 section 6.7) to AcmeProblem."""

from __future__ import annotations

import json

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import problems

ERR = "urn:ietf:params:acme:error:"


@pytest.mark.parametrize(("status", "body", "retry_after", "short", "message"), [
    pytest.param(400, {"type": ERR + "badNonce", "detail": "stale"}, None, "badNonce",
                 "ACME server error badNonce: stale", id="badNonce"),
    pytest.param(429, {"type": ERR + "rateLimited", "detail": "too many"}, 3600.0, "rateLimited",
                 "ACME server error rateLimited: too many (the server asks to retry after 3600 s)", id="rateLimited"),
    pytest.param(400, {"type": ERR + "rejectedIdentifier", "detail": "Error creating new order",
                       "subproblems": [{"type": ERR + "rejectedIdentifier", "detail": "forbidden",
                                        "identifier": {"type": "dns", "value": "bad.example"}}]},
                 None, "rejectedIdentifier",
                 "ACME server error rejectedIdentifier: Error creating new order "
                 "[bad.example: rejectedIdentifier: forbidden]", id="subproblems"),
    pytest.param(403, {"type": ERR + "unauthorized"}, None, "unauthorized",
                 "ACME server error unauthorized: no detail given", id="no-detail"),
    pytest.param(400, {"type": "about:blank", "detail": "x"}, None, "blank",
                 "ACME server error about:blank: x", id="foreign-type"),
])
def test_problem_mapping(status: int, body: dict[str, object], retry_after: float | None, short: str,
                         message: str) -> None:
    error = problems.problem_error(status, json.dumps(body).encode(), "https://ca.test/x", retry_after, certificate="c")
    assert error.short_type == short
    assert error.status == status
    assert error.msg == message
    assert error.retry_after == retry_after
    assert error.context["certificate"] == "c" and error.context["url"] == "https://ca.test/x"


@pytest.mark.parametrize("content", [b"", b"<html>Bad gateway</html>", b"[1]", b"\xff"])
def test_non_problem_bodies(content: bytes) -> None:
    error = problems.problem_error(502, content, "https://ca.test/x")
    assert error.msg.startswith("ACME server answered HTTP 502 for https://ca.test/x")
    assert error.problem_type == "" and error.status == 502
