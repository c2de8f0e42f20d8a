# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Transport: nonce pool, badNonce, retries with backoff and Retry-After, within a time bound."""

from __future__ import annotations

import json
import threading
import typing as t

import pytest
import requests

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import transport as tr
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import AcmeNetworkError, AcmeProblem
from tests.unit.plugins.module_utils._acme.conftest import FakeClock
from tests.unit.plugins.module_utils._acme.fake_acme import Response

URL = "https://ca.test/x"
NONCE_URL = "https://ca.test/nonce"
ERR = "urn:ietf:params:acme:error:"


class Scripted:
    """A session answering from a list: a Response, or an exception to raise."""

    def __init__(self, *answers: t.Any) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, str, dict[str, t.Any] | None]] = []
        self.nonce_counter = 0

    def request(self, method: str, url: str, data: bytes | None = None, headers: t.Any = None,
                timeout: float | None = None) -> Response:
        assert timeout
        body = json.loads(data) if data else None
        self.calls.append((method, url, body))
        if method == "HEAD":
            self.nonce_counter += 1
            return Response(200, {"Replay-Nonce": f"head{self.nonce_counter}"}, b"", url)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return t.cast(Response, answer)

    def nonces_used(self) -> list[str]:
        out = []
        for method, _url, body in self.calls:
            if method == "POST" and body:
                protected = json.loads(_unb64(body["protected"]))
                out.append(protected["nonce"])
        return out


def _unb64(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def ok(nonce: str | None = None, status: int = 200, body: t.Any = None, **headers: str) -> Response:
    hdrs = dict(headers)
    if nonce:
        hdrs["Replay-Nonce"] = nonce
    return Response(status, {k.replace("_", "-"): v for k, v in hdrs.items()}, json.dumps(body or {}).encode(), URL)


def problem(kind: str, status: int = 400, nonce: str | None = None, **headers: str) -> Response:
    response = ok(nonce, status, {"type": ERR + kind, "detail": f"{kind} happened"}, **headers)
    response.headers["Content-Type"] = "application/problem+json"
    return response


def make(session: t.Any, clock: FakeClock, **retry: t.Any) -> tr.Transport:
    transport = tr.Transport(timeout=3, session=session, clock=clock, retry=tr.RetryPolicy(**retry))
    transport.nonce_url = NONCE_URL
    return transport


def sign(nonce: str) -> dict[str, str]:
    import base64

    protected = base64.urlsafe_b64encode(json.dumps({"nonce": nonce}).encode()).decode()
    return {"protected": protected, "payload": "", "signature": ""}


# ------------------------------------------------------------------ nonce pool


def test_nonce_pool_is_lifo_and_bounded() -> None:
    pool = tr.NoncePool(size=2)
    for nonce in ("a", "b", "c", None, ""):
        pool.put(nonce)
    assert len(pool) == 2
    assert [pool.take(), pool.take(), pool.take()] == ["c", "b", None]


def test_nonce_pool_hands_each_nonce_out_once_across_threads() -> None:
    pool = tr.NoncePool(size=10_000)
    for i in range(5000):
        pool.put(str(i))
    taken: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        while (nonce := pool.take()) is not None:
            with lock:
                taken.append(nonce)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken, key=int) == [str(i) for i in range(5000)]


def test_nonces_come_from_every_response_and_head_only_when_empty(clock: FakeClock) -> None:
    session = Scripted(ok("n1"), ok("n2"), ok("n3"))
    transport = make(session, clock)
    transport.post(URL, sign)  # pool empty: HEAD newNonce
    transport.post(URL, sign)  # uses n1 from the previous response
    transport.get(URL)
    assert [c[0] for c in session.calls] == ["HEAD", "POST", "POST", "GET"]
    assert session.nonces_used() == ["head1", "n1"]
    assert transport.nonces.take() == "n3"
    assert transport.request_count == 4


# ------------------------------------------------------------------ badNonce


def test_bad_nonce_is_retried_with_the_nonce_of_the_error(clock: FakeClock) -> None:
    session = Scripted(problem("badNonce", nonce="fresh1"), problem("badNonce", nonce="fresh2"), ok("n"))
    transport = make(session, clock)
    assert transport.post(URL, sign).status == 200
    assert session.nonces_used() == ["head1", "fresh1", "fresh2"]
    assert transport.bad_nonce_count == 2
    assert clock.sleeps == []  # no backoff for a bad nonce


def test_bad_nonce_gives_up_after_the_limit(clock: FakeClock) -> None:
    session = Scripted(*[problem("badNonce", nonce=f"f{i}") for i in range(3)])
    transport = make(session, clock, bad_nonce_attempts=3)
    with pytest.raises(AcmeProblem, match=r"badNonce.*gave up after 3 rejected nonces") as info:
        transport.post(URL, sign, certificate="web")
    assert info.value.short_type == "badNonce"
    assert info.value.context["certificate"] == "web"


# ------------------------------------------------------------------ retries

RETRY_TABLE = [
    # answers, expected sleeps, final status
    pytest.param([ok(status=503), ok(status=503), ok()], [0.5, 1.0], 200, id="5xx-backoff"),
    pytest.param([ok(status=503, Retry_After="3"), ok()], [3.0], 200, id="retry-after-seconds"),
    pytest.param([ok(status=429), ok(status=500), ok(status=502), ok()], [0.5, 1.0, 2.0], 200, id="429-then-5xx"),
    pytest.param([ok(status=500)] * 4, [0.5, 1.0, 2.0], 500, id="attempts-exhausted"),
    pytest.param([ok(status=503, Retry_After="100"), ok()], [], 503, id="retry-after-beyond-budget"),
    pytest.param([ok(status=404)], [], 404, id="4xx-not-retried"),
]


@pytest.mark.parametrize(("answers", "sleeps", "status"), RETRY_TABLE)
def test_get_retries(clock: FakeClock, answers: list[t.Any], sleeps: list[float], status: int) -> None:
    transport = make(Scripted(*answers), clock, budget=60)
    if status >= 400:
        with pytest.raises(AcmeProblem) as info:
            transport.get(URL)
        assert info.value.status == status
    else:
        assert transport.get(URL).status == status
    assert clock.sleeps == sleeps


def test_rate_limited_with_long_retry_after_fails_at_once_and_says_when(clock: FakeClock) -> None:
    session = Scripted(problem("rateLimited", status=429, Retry_After="3600"))
    transport = make(session, clock)
    with pytest.raises(AcmeProblem, match=r"rateLimited: rateLimited happened \(the server asks to retry after 3600 s\)") as info:
        transport.post(URL, sign)
    assert info.value.retry_after == 3600
    assert clock.sleeps == []


def test_retry_after_http_date(clock: FakeClock) -> None:
    clock.t = 1_700_000_000.0  # 2023-11-14T22:13:20Z
    session = Scripted(ok(status=503, Retry_After="Tue, 14 Nov 2023 22:13:27 GMT"), ok())
    make(session, clock).get(URL)
    assert clock.sleeps == [7.0]


def test_connection_errors_are_retried_then_reported(clock: FakeClock) -> None:
    error = requests.exceptions.ConnectionError("Max retries exceeded ([Errno 111] Connection refused)")
    transport = make(Scripted(error, error, error), clock, attempts=3)
    with pytest.raises(AcmeNetworkError, match=r"cannot reach the ACME server at https://ca.test/x: connection refused"):
        transport.get(URL)
    assert clock.sleeps == [0.5, 1.0]


def test_connection_error_then_success(clock: FakeClock) -> None:
    transport = make(Scripted(requests.exceptions.ReadTimeout("slow"), ok()), clock)
    assert transport.get(URL).status == 200
    assert clock.sleeps == [0.5]


def test_tls_errors_are_not_retried(clock: FakeClock) -> None:
    transport = make(Scripted(requests.exceptions.SSLError("certificate verify failed")), clock)
    with pytest.raises(AcmeNetworkError, match="ca_path"):
        transport.get(URL)
    assert clock.sleeps == []


def test_total_time_bound(clock: FakeClock) -> None:
    transport = make(Scripted(*[ok(status=503)] * 10), clock, budget=5, attempts=10, backoff=1, backoff_cap=8)
    with pytest.raises(AcmeProblem):
        transport.get(URL)
    assert clock.sleeps == [1.0, 2.0]  # the next 4 s would pass the 5 s bound
    assert sum(clock.sleeps) <= 5


# ------------------------------------------------------------------ response helpers


def test_links_and_location_are_resolved() -> None:
    response = tr.Response(
        200,
        {"Link": '<https://ca.test/cert/1/1>;rel="alternate", </dir>; rel="index", <./2>;rel=alternate',
         "Location": "/order/5"},
        b"", "https://ca.test/cert/1",
    )
    assert response.links("alternate") == ["https://ca.test/cert/1/1", "https://ca.test/cert/2"]
    assert response.links("index") == ["https://ca.test/dir"]
    assert response.location == "https://ca.test/order/5"


@pytest.mark.parametrize(("value", "seconds"), [
    (None, None), ("", None), ("120", 120.0), ("junk", None),
    ("Thu, 01 Jan 1970 00:01:40 GMT", 60.0), ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
])
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert tr.parse_retry_after(value, now=40.0) == seconds


def test_response_json_errors_name_the_url() -> None:
    with pytest.raises(tr.AcmeError, match=r"no JSON for https://ca\.test/x"):
        tr.Response(200, {}, b"<html>", URL).json()
    with pytest.raises(tr.AcmeError, match="JSON list"):
        tr.Response(200, {}, b"[]", URL).json()
