# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Transport: nonce pool, one retry loop per request within a time bound (badNonce, 429, 5xx,
connection errors, newNonce), the shared Retry-After pause, the CA health breaker, lost replies."""

from __future__ import annotations

import json
import threading
import time
import typing as t

import pytest
import requests

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import transport as tr
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import (
    AcmeError,
    AcmeNetworkError,
    AcmeProblem,
    AcmeReplyLost,
    AcmeUnreachable,
)
from tests.unit.plugins.module_utils._acme.conftest import FakeClock
from tests.unit.plugins.module_utils._acme.fake_acme import Response, refused, reset

URL = "https://ca.test/x"
NONCE_URL = "https://ca.test/nonce"
ERR = "urn:ietf:params:acme:error:"


class Scripted:
    """A session answering from a list: a Response, or an exception to raise.

    HEAD newNonce answers from ``heads`` while it lasts, then with a fresh nonce."""

    def __init__(self, *answers: t.Any, heads: t.Sequence[t.Any] = ()) -> None:
        self.answers = list(answers)
        self.heads = list(heads)
        self.calls: list[tuple[str, str, dict[str, t.Any] | None]] = []
        self.nonce_counter = 0

    def request(self, method: str, url: str, data: bytes | None = None, headers: t.Any = None,
                timeout: float | None = None) -> Response:
        assert timeout
        body = json.loads(data) if data else None
        self.calls.append((method, url, body))
        if method == "HEAD":
            if self.heads:
                head = self.heads.pop(0)
                if isinstance(head, BaseException):
                    raise head
                return t.cast(Response, head)
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


def make(session: t.Any, clock: tr.Clock, **retry: t.Any) -> tr.Transport:
    transport = tr.Transport(timeout=3, session=session, clock=clock, retry=tr.RetryPolicy(**retry),
                             server="https://ca.test/dir", environ={})  # no proxy from the machine's environment
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


def test_bad_nonce_retries_are_bounded_by_time_not_count(clock: FakeClock) -> None:
    """A CA refusing every nonce: the first retries at once, then short pauses up to 1 s, until the budget."""
    session = Scripted(*[problem("badNonce", nonce=f"f{i}") for i in range(100)])
    transport = make(session, clock, budget=5)
    with pytest.raises(AcmeProblem, match=r"badNonce.*\(gave up after (\d+) rejected nonces in 5 s\)$") as info:
        transport.post(URL, sign, certificate="web")
    assert info.value.short_type == "badNonce"
    assert info.value.context["certificate"] == "web"
    assert clock.sleeps[:4] == [0.05, 0.075, 0.1125, 0.16875]  # after three free retries
    assert max(clock.sleeps) == 0.5 and sum(clock.sleeps) <= 5
    assert 10 < transport.bad_nonce_count == len(session.calls) - 1 < 30  # one HEAD, then only POSTs


def test_bad_nonce_at_seventy_percent_is_ridden_out(clock: FakeClock) -> None:
    """Nine refusals in a row (0.7 ** 9 = 4 %) still end well within the budget."""
    session = Scripted(*[problem("badNonce", nonce=f"f{i}") for i in range(9)], ok("n"))
    transport = make(session, clock, budget=20)
    assert transport.post(URL, sign).status == 200
    assert session.nonces_used()[1:] == [f"f{i}" for i in range(9)]
    assert sum(clock.sleeps) < 2


# ------------------------------------------------------------------ retries

RETRY_TABLE = [
    # answers, expected sleeps, final status
    pytest.param([ok(status=503), ok(status=503), ok()], [0.5, 1.0], 200, id="5xx-backoff"),
    pytest.param([ok(status=503, Retry_After="3"), ok()], [3.0], 200, id="retry-after-seconds"),
    pytest.param([ok(status=503, Retry_After="0"), ok()], [0.5], 200, id="retry-after-zero-is-a-backoff"),
    pytest.param([ok(status=429), ok(status=500), ok(status=502), ok()], [0.5, 1.0, 2.0], 200, id="429-then-5xx"),
    pytest.param([problem("serverInternal", status=500)] * 20, [0.5, 1.0] + [2.0] * 9, 500,
                 id="time-exhausted"),
    pytest.param([ok(status=503, Retry_After="100"), ok()], [], 503, id="retry-after-beyond-budget"),
    pytest.param([ok(status=404)], [], 404, id="4xx-not-retried"),
]


@pytest.mark.parametrize(("answers", "sleeps", "status"), RETRY_TABLE)
def test_get_retries(clock: FakeClock, answers: list[t.Any], sleeps: list[float], status: int) -> None:
    transport = make(Scripted(*answers), clock, budget=20)
    if status >= 400:
        with pytest.raises(AcmeProblem) as info:
            transport.get(URL)
        assert info.value.status == status
    else:
        assert transport.get(URL).status == status
    assert clock.sleeps == sleeps
    assert sum(clock.sleeps) <= 20


def test_rate_limited_with_long_retry_after_fails_at_once_and_says_when(clock: FakeClock) -> None:
    clock.t = 1_700_000_000.0  # 2023-11-14T22:13:20Z
    session = Scripted(problem("rateLimited", status=429, Retry_After="3600"))
    transport = make(session, clock)
    with pytest.raises(AcmeProblem, match=r"rateLimited: rateLimited happened \(the server asks to retry after "
                                          r"3600 s, at 2023-11-14T23:13:20Z\)$") as info:
        transport.post(URL, sign)
    assert info.value.retry_after == 3600
    assert info.value.context["retry_at"] == "2023-11-14T23:13:20Z"
    assert clock.sleeps == []


def test_retry_after_http_date(clock: FakeClock) -> None:
    clock.t = 1_700_000_000.0  # 2023-11-14T22:13:20Z
    session = Scripted(ok(status=503, Retry_After="Tue, 14 Nov 2023 22:13:27 GMT"), ok())
    make(session, clock).get(URL)
    assert clock.sleeps == [7.0]


def test_connection_errors_are_retried_until_the_budget(clock: FakeClock) -> None:
    error = requests.exceptions.ConnectionError("Max retries exceeded ([Errno 111] Connection refused)")
    clock.t = 1_700_000_000.0
    transport = make(Scripted(*[error] * 20), clock, budget=5)
    with pytest.raises(AcmeUnreachable, match=r"^the ACME server https://ca.test/dir is unreachable since "
                                              r"2023-11-14T22:13:20Z: connection refused$"):
        transport.get(URL)
    assert clock.sleeps == [0.5, 1.0, 2.0]  # the next 2 s would pass the 5 s bound


def test_connection_error_then_success(clock: FakeClock) -> None:
    transport = make(Scripted(requests.exceptions.ReadTimeout("slow"), ok()), clock)
    assert transport.get(URL).status == 200
    assert clock.sleeps == [0.5]


def test_a_broken_connection_is_retried_at_once_then_with_backoff(clock: FakeClock) -> None:
    transport = make(Scripted(reset(), reset(), reset(), ok()), clock)
    assert transport.get(URL).status == 200
    assert clock.sleeps == [0.5, 1.0]


def test_tls_verification_errors_are_not_retried(clock: FakeClock) -> None:
    transport = make(Scripted(requests.exceptions.SSLError("certificate verify failed")), clock)
    with pytest.raises(AcmeNetworkError, match="ca_path"):
        transport.get(URL)
    assert clock.sleeps == []


def test_a_tls_handshake_cut_off_is_retried(clock: FakeClock) -> None:
    """A CA stopping while a handshake is under way: not its certificate's fault."""
    cut = requests.exceptions.SSLError("EOF occurred in violation of protocol (_ssl.c:992)")
    transport = make(Scripted(cut, ok()), clock)
    assert transport.get(URL).status == 200
    assert clock.sleeps == [0.5]


def test_total_time_bound(clock: FakeClock) -> None:
    transport = make(Scripted(*[ok(status=503)] * 10), clock, budget=5, backoff=1, backoff_cap=8)
    with pytest.raises(AcmeError):
        transport.get(URL)
    assert clock.sleeps == [1.0, 2.0]  # the next 4 s would pass the 5 s bound
    assert sum(clock.sleeps) <= 5


def test_default_budget_is_twice_the_request_timeout() -> None:
    assert tr.Transport(timeout=10).retry.budget == 20
    assert tr.Transport(timeout=2.5).retry.budget == 5


# ------------------------------------------------------------------ newNonce inside the request's loop


def test_a_failed_new_nonce_is_an_attempt_of_the_post_not_a_loop_of_its_own(clock: FakeClock) -> None:
    """HEAD newNonce answering 503, resetting twice: retries of the POST's one loop, then the POST.

    The first retry after a broken connection goes at once; the next one backs off."""
    session = Scripted(ok("n"), heads=[ok(status=503), reset(), reset()])
    transport = make(session, clock)
    assert transport.post(URL, sign).status == 200
    assert [c[0] for c in session.calls] == ["HEAD", "HEAD", "HEAD", "HEAD", "POST"]
    assert clock.sleeps == [0.5, 1.0]


def test_new_nonce_503_with_retry_after_is_a_pause(clock: FakeClock) -> None:
    session = Scripted(ok("n"), heads=[ok(status=503, Retry_After="2")])
    assert make(session, clock).post(URL, sign).status == 200
    assert clock.sleeps == [2.0]


def test_new_nonce_that_never_works_names_the_new_nonce_url(clock: FakeClock) -> None:
    session = Scripted(heads=[ok(status=405)])
    with pytest.raises(AcmeProblem, match=r"HTTP 405 for https://ca\.test/nonce"):
        make(session, clock).post(URL, sign)


# ------------------------------------------------------------------ the shared pause


def test_retry_after_pauses_every_thread_not_only_the_one_that_got_it() -> None:
    """Thread A gets 503 with Retry-After: 1; thread B, starting during that pause, waits it out too."""
    paused = threading.Event()

    class Session:
        def __init__(self) -> None:
            self.first = True
            self.lock = threading.Lock()
            self.sent: list[float] = []

        def request(self, method: str, url: str, **_: t.Any) -> Response:
            with self.lock:
                self.sent.append(time.monotonic())
                first, self.first = self.first, False
            return ok(status=503, Retry_After="1") if first else ok()

    session = Session()
    transport = make(session, tr.Clock())
    original = transport.pause.extend

    def extend(until: float, response: tr.Response) -> None:
        original(until, response)
        paused.set()

    transport.pause.extend = extend  # type: ignore[method-assign]
    started = time.monotonic()
    a = threading.Thread(target=transport.get, args=(URL,))
    a.start()
    assert paused.wait(5)
    b_started = time.monotonic()
    transport.get(URL)  # thread B: no 503 for it, and yet it waits
    a.join(5)
    assert time.monotonic() - b_started >= 0.8
    assert all(sent - started >= 0.95 for sent in session.sent[1:])
    assert transport.pause.count == 1


def test_a_pause_beyond_a_request_budget_fails_that_request_at_once_with_the_time(clock: FakeClock) -> None:
    clock.t = 1_700_000_000.0
    transport = make(Scripted(ok()), clock, budget=5)
    transport.pause.extend(clock.monotonic() + 30, tr.Response(429, {"Retry-After": "30"}, b"", URL))
    with pytest.raises(AcmeProblem, match=r"HTTP 429 .*\(the server asks to retry after 30 s, at 2023-11-14T22:13:50Z\)"):
        transport.get(URL, certificate="web")
    assert clock.sleeps == []


# ------------------------------------------------------------------ the breaker


def test_breaker_opens_after_the_budget_and_later_requests_fail_at_once(clock: FakeClock) -> None:
    clock.t = 1_700_000_000.0
    session = Scripted(*[refused(URL)] * 50)
    transport = make(session, clock, budget=5)
    with pytest.raises(AcmeUnreachable):
        transport.get(URL)
    sent = len(session.calls)
    for _ in range(100):  # the rest of a batch
        with pytest.raises(AcmeUnreachable, match=r"unreachable since 2023-11-14T22:13:20Z: connection refused") as info:
            transport.post(URL, sign, certificate="c")
        assert info.value.context["certificate"] == "c"
        assert info.value.context["unreachable_since"] == "2023-11-14T22:13:20Z"
    assert len(session.calls) == sent  # nothing more was sent
    assert sum(clock.sleeps) <= 5
    with pytest.raises(AcmeUnreachable):
        transport.check_reachable()


def test_a_request_whose_failures_began_before_the_last_answer_waits_for_the_verdict(clock: FakeClock) -> None:
    """The CA stops; one request still in flight gets its answer after this one's first failure.
    Out of time, this one waits for the breaker instead of reporting an outage of its own."""
    transport = make(Scripted(), clock, budget=5)

    class Session:
        calls = 0

        def request(self, method: str, url: str, **_: t.Any) -> Response:
            Session.calls += 1
            if Session.calls == 2:
                transport.health.answered()  # another thread's late answer
            raise refused(url)

    transport._session = Session()
    started = clock.t
    with pytest.raises(AcmeUnreachable, match="unreachable since"):
        transport.get(URL)
    assert 5 < clock.t - started <= 0.5 + 5 + 0.25  # the streak began at the second try (0.5 s)
    with pytest.raises(AcmeUnreachable):
        transport.get(URL)  # and the rest fail at once


def test_an_unlucky_request_in_a_storm_does_not_declare_an_outage() -> None:
    """Every try of this request breaks, while the other threads keep getting answers."""

    class Busy(FakeClock):
        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            transport.health.answered()  # the others got through meanwhile

    class Session:
        def request(self, method: str, url: str, **_: t.Any) -> Response:
            raise reset()

    transport = make(Session(), Busy(), budget=5)
    with pytest.raises(AcmeNetworkError, match=r"cannot reach the ACME server at https://ca\.test/x: connection reset") \
            as info:
        transport.get(URL)
    assert not isinstance(info.value, AcmeUnreachable) and not transport.health.is_open


def test_any_answer_clears_the_record_so_a_flaky_ca_never_opens_it(clock: FakeClock) -> None:
    """Failures interleaved with answers for much longer than the window: never 'unreachable'."""
    answers: list[t.Any] = []
    for _ in range(30):
        answers += [reset(), ok(status=503), ok()]
    session = Scripted(*answers)
    transport = make(session, clock, budget=2)
    for _ in range(30):
        assert transport.get(URL).status == 200
    assert sum(clock.sleeps) > 10 and not transport.health.is_open


def test_a_ca_that_speaks_is_not_unreachable(clock: FakeClock) -> None:
    """500 with a problem document for the whole budget: the CA's own error, not an outage."""
    session = Scripted(*[problem("serverInternal", status=500)] * 20)
    transport = make(session, clock, budget=5)
    with pytest.raises(AcmeProblem, match="serverInternal"):
        transport.get(URL)
    assert not transport.health.is_open


def test_a_gateway_answering_503_for_the_whole_budget_is_an_outage(clock: FakeClock) -> None:
    transport = make(Scripted(*[ok(status=503)] * 20), clock, budget=5)
    with pytest.raises(AcmeUnreachable, match=r"unreachable since .*: HTTP 503 \(\{\}\)"):
        transport.get(URL)


def test_retry_server_errors_false_takes_a_problem_document_as_the_answer(clock: FakeClock) -> None:
    session = Scripted(problem("serverInternal", status=500), ok(status=503), ok())
    transport = make(session, clock)
    with pytest.raises(AcmeProblem, match="serverInternal"):
        transport.post(URL, sign, retry_server_errors=False)
    assert transport.post(URL, sign, retry_server_errors=False).status == 200  # a 503 still is retried
    assert clock.sleeps == [0.5]


# ------------------------------------------------------------------ lost replies


def test_a_reply_lost_after_sending_is_reported_for_requests_not_safe_to_repeat(clock: FakeClock) -> None:
    session = Scripted(reset())
    transport = make(session, clock)
    with pytest.raises(AcmeReplyLost, match=r"connection reset; it may have been acted on"):
        transport.post(URL, sign, replay_safe=False)
    assert [c[0] for c in session.calls] == ["HEAD", "POST"] and transport.lost_replies == 1


@pytest.mark.parametrize("error", [
    pytest.param(reset(), id="reset"),
    pytest.param(requests.exceptions.ReadTimeout("read timed out"), id="read-timeout"),
    pytest.param(requests.exceptions.ChunkedEncodingError("IncompleteRead(25 bytes read, 75 more expected)"),
                 id="cut-short"),
])
def test_lost_replies_are_sent_again_when_that_is_safe(clock: FakeClock, error: Exception) -> None:
    session = Scripted(error, ok())
    assert make(session, clock).post(URL, sign).status == 200
    assert [c[0] for c in session.calls] == ["HEAD", "POST", "HEAD", "POST"]


@pytest.mark.parametrize("error", [
    pytest.param(refused(URL), id="refused"),
    pytest.param(requests.exceptions.ConnectTimeout("connect timed out"), id="connect-timeout"),
])
def test_a_request_that_never_left_is_sent_again_even_when_not_safe_to_repeat(clock: FakeClock, error: Exception) -> None:
    session = Scripted(error, ok())
    assert make(session, clock).post(URL, sign, replay_safe=False).status == 200


def test_a_body_shorter_than_its_content_length_is_a_lost_reply(clock: FakeClock) -> None:
    """Debian 12's urllib3 hands a truncated body over silently; the transport notices."""
    whole = json.dumps({"status": "valid", "padding": "x" * 50}).encode()
    cut = Response(200, {"Content-Length": str(len(whole))}, whole[:20], URL)
    session = Scripted(cut, Response(200, {"Content-Length": str(len(whole))}, whole, URL))
    transport = make(session, clock)
    assert transport.get(URL).json()["status"] == "valid"
    with pytest.raises(AcmeReplyLost, match=r"was cut short \(20 of \d+ bytes\)"):
        make(Scripted(cut), clock).post(URL, sign, replay_safe=False)
    gzipped = Response(200, {"Content-Length": "5", "Content-Encoding": "gzip"}, whole, URL)
    assert make(Scripted(gzipped), clock).get(URL).status == 200  # decoded: its length says nothing


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
