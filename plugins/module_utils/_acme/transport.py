# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""HTTP to the ACME server: one keep-alive session, the nonce pool, retries, the CA's health.

RFC 8555 section 6.5: every response carries a fresh ``Replay-Nonce``; keeping them
saves a ``HEAD newNonce`` per request. A ``badNonce`` error is retried with the nonce
that error response carried (section 6.5: "retry the request using the new nonce").

Every request has **one** retry loop, bounded in time (``RetryPolicy.budget``, twice
``request_timeout`` unless told otherwise), never by a count: a rejected nonce, HTTP 429,
5xx, a connection error and a failed ``HEAD newNonce`` are all attempts of the same
loop. What the threads of one run share, because they talk to one CA:

* :class:`Pause`: a ``Retry-After`` on 429 or 503 (RFC 9110 section 10.2.3) holds back
  every thread's next attempt, not only the one that got it. One beyond the time bound
  fails at once, naming when to try again.
* :class:`CaHealth`: a circuit breaker. Once the CA has answered nothing (connection
  errors, timeouts, 502/503/504, 5xx without a problem document) for the time bound,
  every request fails at once with :class:`AcmeUnreachable` for the rest of the run, so
  an outage costs the time bound, not the time bound per certificate.

A request that is not safe to repeat (``replay_safe=False``: a challenge trigger, a
finalize) whose reply was lost after it may have been sent raises
:class:`AcmeReplyLost` instead of being sent again: the caller reads the resource's
state and goes on from it (order.py).
"""

from __future__ import annotations

import collections
import email.utils
import importlib.util
import ipaddress
import json
import os
import re
import threading
import time
import typing as t
from urllib.parse import urljoin, urlsplit

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.problems import (
    parse_problem,
    problem_error,
    short_type,
    utc_text,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import (
    AcmeError,
    AcmeNetworkError,
    AcmeProblem,
    AcmeReplyLost,
    AcmeUnreachable,
)

# requests (and urllib3 under it) costs ~0.1 s to import: it is loaded on the first
# request, so a run that has nothing to ask the CA never pays for it.
HAS_REQUESTS = importlib.util.find_spec("requests") is not None

if t.TYPE_CHECKING:
    import requests


def _requests() -> t.Any:
    import requests  # noqa: PLC0415 - deferred on purpose, see above

    return requests


USER_AGENT = "tlsops.haproxy_acme (python-requests)"
JOSE = "application/jose+json"
_LINK = re.compile(r'<([^>]*)>((?:\s*;\s*[^;,]+)*)')
_REL = re.compile(r'rel\s*=\s*"?([^";]+)"?', re.IGNORECASE)


class _TlsError(AcmeNetworkError):
    """TLS verification failed: not worth a retry."""


class _NoAnswer(AcmeNetworkError):
    """No usable reply. ``sent``: the request may have reached the server (so it may have acted).
    ``dropped``: the connection broke (reset, closed, cut short), rather than refused or timed out."""

    def __init__(self, msg: str, cause: str, sent: bool, dropped: bool = False, **context: t.Any) -> None:
        super().__init__(msg, **context)
        self.cause = cause
        self.sent = sent
        self.dropped = dropped


class Clock:
    """Time and sleep, swappable in tests for a fake clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def now(self) -> float:
        """Wall-clock seconds since the epoch (to read HTTP-date Retry-After values)."""
        return time.time()


class Headers(t.Dict[str, str]):
    """Response headers; names compared without regard to case (RFC 9110 section 5.1)."""

    def __init__(self, headers: t.Mapping[str, str]) -> None:
        super().__init__((name.lower(), value) for name, value in headers.items())

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return super().__contains__(name.lower() if isinstance(name, str) else name)

    def get(self, name: str, default: t.Any = None) -> t.Any:
        return super().get(name.lower(), default)


class Response:
    """What we keep of an HTTP response: status, headers, body and its URL."""

    def __init__(self, status: int, headers: t.Mapping[str, str], content: bytes, url: str) -> None:
        self.status = status
        self.headers = Headers(headers)
        self.content = content
        self.url = url

    def json(self) -> dict[str, t.Any]:
        try:
            data = json.loads(self.content.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
            raise AcmeError(f"ACME server sent no JSON for {self.url}", url=self.url) from None
        if not isinstance(data, dict):
            raise AcmeError(f"ACME server sent a JSON {type(data).__name__}, not an object, for {self.url}", url=self.url)
        return data

    @property
    def location(self) -> str | None:
        value = self.headers.get("Location")
        return urljoin(self.url, value) if value else None

    def links(self, rel: str) -> list[str]:
        """Every ``Link`` target with relation ``rel`` (RFC 8288), resolved against the URL."""
        found = []
        for target, params in _LINK.findall(self.headers.get("Link", "")):
            match = _REL.search(params)
            if match and rel in match.group(1).split():
                found.append(urljoin(self.url, target))
        return found

    def retry_after(self, now: float) -> float | None:
        return parse_retry_after(self.headers.get("Retry-After"), now)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After value: delay-seconds or an HTTP-date; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit() also takes '²', which float() refuses
        seconds = float(value)
        return seconds if seconds < 1e9 else None  # a delay of decades is no delay to honour
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)


class NoncePool:
    """Unused nonces from ``Replay-Nonce`` headers, shared by every thread (RFC 8555 section 7.2)."""

    def __init__(self, size: int = 64) -> None:
        self._nonces: collections.deque[str] = collections.deque(maxlen=size)
        self._lock = threading.Lock()

    def put(self, nonce: str | None) -> None:
        if nonce:
            with self._lock:
                self._nonces.append(nonce)

    def take(self) -> str | None:
        """The newest nonce (the least likely to have expired), or None when the pool is empty."""
        with self._lock:
            return self._nonces.pop() if self._nonces else None

    def clear(self) -> None:
        with self._lock:
            self._nonces.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._nonces)


class RetryPolicy:
    """How one request is retried: within ``budget`` seconds of its first attempt, never by a count.

    5xx, 429 without ``Retry-After`` and connection errors wait ``backoff`` doubling up to
    ``backoff_cap``; the first retry after a broken connection goes at once. A rejected
    nonce is retried at once ``free_nonce_retries`` times, then after ``nonce_backoff``
    growing by half up to half a second: a CA refusing 70 % of nonces gets some 45 tries
    per request in 20 s (0.7 ** 45 < 1e-6), one refusing every nonce a few dozen requests,
    not thousands.
    """

    def __init__(
        self,
        budget: float = 20.0,
        backoff: float = 0.5,
        backoff_cap: float = 2.0,
        free_nonce_retries: int = 3,
        nonce_backoff: float = 0.05,
    ) -> None:
        self.budget = budget
        self.backoff = backoff
        self.backoff_cap = backoff_cap
        self.free_nonce_retries = free_nonce_retries
        self.nonce_backoff = nonce_backoff

    def delay(self, attempt: int) -> float:
        """Backoff before retry ``attempt`` (1-based): backoff, 2x, 4x ... up to the cap."""
        return float(min(self.backoff_cap, self.backoff * (2 ** (attempt - 1))))

    def nonce_delay(self, rejected: int) -> float:
        """Wait before the retry after the ``rejected``-th badNonce of a request."""
        if rejected <= self.free_nonce_retries:
            return 0.0
        return float(min(0.5, self.nonce_backoff * 1.5 ** (rejected - self.free_nonce_retries - 1)))


def _is_retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


def _is_outage(response: Response) -> bool:
    """An answer that says the CA itself is not there: a gateway's 502/503/504, or a 5xx
    without a problem document. A 429, a 4xx, or a 500 with a problem document is the CA
    speaking, however unhappily."""
    if response.status in (502, 503, 504):
        return True
    return response.status >= 500 and parse_problem(response.content) is None


def _cause(response: Response) -> str:
    """A short reason for a failed answer: ``HTTP 503 (empty body)``."""
    problem = parse_problem(response.content)
    if problem is not None:
        return f"HTTP {response.status} ({short_type(str(problem.get('type', '')))}: {problem.get('detail') or ''})"
    body = response.content[:80].decode("utf-8", "replace").strip()
    return f"HTTP {response.status} ({body or 'empty body'})"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else url


class CaHealth:
    """A circuit breaker shared by every thread of a run: is the CA there at all?

    Any answer from the CA (see :func:`_is_outage`) clears the record of failures. A
    failure starts one (``since``, the start of the attempt that failed) unless one is
    running. Once failures have run for ``window`` seconds with no answer in between,
    the breaker opens: every later request fails at once, for the rest of the run. A
    request that spent its whole time bound without an answer opens it too, if nothing
    was answered since its first failure; if something was, it waits for the verdict.
    """

    def __init__(self, window: float, clock: Clock) -> None:
        self.window = window
        self.clock = clock
        self._lock = threading.Lock()
        self._since: tuple[float, float] | None = None  # (monotonic, wall clock) of the first failure
        self._cause = ""
        self._open = False

    def answered(self) -> None:
        with self._lock:
            if not self._open:
                self._since = None

    def failed(self, started: tuple[float, float], cause: str) -> None:
        with self._lock:
            self._cause = cause
            if self._since is None:
                self._since = started
            if self.clock.monotonic() - self._since[0] >= self.window:
                self._open = True

    def give_up(self, first_failure: float) -> bool:
        """A request out of time: open if no answer came since its first failure. Whether open."""
        with self._lock:
            if self._since is not None and self._since[0] <= first_failure:
                self._open = True
            return self._open

    def opens_at(self) -> float | None:
        """When the running failures would open the breaker (monotonic), or None."""
        with self._lock:
            return None if self._since is None else self._since[0] + self.window

    @property
    def is_open(self) -> bool:
        return self._open

    def check(self, server: str, **context: t.Any) -> None:
        """AcmeUnreachable once the breaker is open (or failures have run for the window)."""
        with self._lock:
            if not self._open and self._since is not None \
                    and self.clock.monotonic() - self._since[0] >= self.window:
                self._open = True
            if not self._open or self._since is None:
                return
            since, cause = self._since[1], self._cause
        raise AcmeUnreachable(f"the ACME server {server} is unreachable since {utc_text(since)}: {cause}",
                              unreachable_since=utc_text(since), **context)


class Pause:
    """A Retry-After every thread honours: the CA asked this client, not one thread, to wait."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._until = 0.0  # monotonic
        self._answer: tuple[int, bytes, str] | None = None  # the response that asked for it
        self.count = 0  # pauses asked for (429 and 503 with Retry-After)

    def extend(self, until: float, response: Response) -> None:
        with self._lock:
            self.count += 1
            if until > self._until:
                self._until = until
                self._answer = (response.status, response.content, response.url)

    def wait(self, deadline: float, **context: t.Any) -> None:
        """Sleep out the pause; an AcmeProblem at once when it lasts past ``deadline``."""
        with self._lock:
            until, answer = self._until, self._answer
        now = self.clock.monotonic()
        if until <= now:
            return
        if until > deadline and answer is not None:
            status, content, url = answer
            left = until - now
            raise problem_error(status, content, url, left, self.clock.now() + left, **context)
        self.clock.sleep(until - now)


class _Request:
    """What one request's retry loop keeps: its deadline, its backoff, its first failure.

    ``no_answer`` and ``answer`` either return (try again: they have slept as needed) or
    raise the error the request ends with; ``answer`` returns True for the final answer.
    """

    def __init__(self, transport: Transport, url: str, *, signed: bool, replay_safe: bool,
                 retry_server_errors: bool, context: dict[str, t.Any]) -> None:
        self.transport = transport
        self.clock = transport.clock
        self.url = url
        self.signed = signed
        self.replay_safe = replay_safe
        self.retry_server_errors = retry_server_errors
        self.context = context
        self.deadline = self.clock.monotonic() + transport.retry.budget
        self.server = transport.server_name(url)
        self.backoffs = 0
        self.rejected = 0
        self.reconnected = False
        self.first_failure: float | None = None

    def _failed(self, started: tuple[float, float], cause: str) -> None:
        self.transport.health.failed(started, cause)
        if self.first_failure is None:
            self.first_failure = started[0]

    def no_answer(self, started: tuple[float, float], exc: _NoAnswer) -> None:
        self._failed(started, exc.cause)
        if exc.sent and not self.replay_safe:
            self.transport.count_lost_reply()
            raise AcmeReplyLost(f"{exc.msg}; it may have been acted on", url=self.url, **self.context) from None
        if exc.dropped and not self.reconnected:
            # A broken keep-alive connection is the common case: the first retry, on a fresh
            # connection, goes at once. Refusals, timeouts and further breaks back off.
            self.reconnected = True
            self._backoff(0.0, exc)
            return
        self.backoffs += 1
        self._backoff(self.transport.retry.delay(self.backoffs), exc)

    def answer(self, started: tuple[float, float], response: Response, answered: str) -> bool:
        transport = self.transport
        if _is_outage(response):
            self._failed(started, _cause(response))
        else:
            transport.health.answered()
        if response.status < 400:
            return True
        if self.signed and answered == self.url and _is_bad_nonce(response):
            self._bad_nonce(response)
            return False
        if not _is_retryable_status(response.status) or (
                not self.retry_server_errors and response.status >= 500 and not _is_outage(response)):
            if answered != self.url:  # the newNonce request failed: its error, not a made-up one
                raise transport._error(response, answered, self.context)
            return True  # the caller raises the CA's problem
        wait = response.retry_after(self.clock.now())
        if wait and response.status in (429, 503):
            if self.clock.monotonic() + wait > self.deadline:
                raise transport._error(response, answered, self.context)  # it names when to try again
            # Every thread waits it out; never less than the first backoff, so that a storm of
            # sub-second Retry-After values cannot turn into a tight loop.
            transport.pause.extend(self.clock.monotonic() + max(wait, transport.retry.backoff), response)
            return False
        self.backoffs += 1
        delay = transport.retry.delay(self.backoffs)
        if wait is not None:
            delay = max(wait, delay)  # at least what the server asks
        self._backoff(delay, transport._error(response, answered, self.context))
        return False

    def _bad_nonce(self, response: Response) -> None:
        self.rejected += 1
        self.transport.count_bad_nonce()
        delay = self.transport.retry.nonce_delay(self.rejected)
        if self.clock.monotonic() + delay > self.deadline:
            error = self.transport._error(response, self.url, self.context)
            error.msg = f"{error.msg} (gave up after {self.rejected} rejected nonces in {self.transport.retry.budget:g} s)"
            error.args = (error.msg,)
            raise error
        if delay:
            self.clock.sleep(delay)

    def _backoff(self, delay: float, error: AcmeError) -> None:
        """Sleep ``delay``, or raise ``error`` when that passes the deadline (AcmeUnreachable
        instead when the CA has answered nothing since this request's first failure)."""
        health = self.transport.health
        now = self.clock.monotonic()
        if now + delay > self.deadline:
            if self.first_failure is not None:
                if not health.give_up(self.first_failure):
                    self._await_verdict()
                health.check(self.server, **self.context)
            raise error
        opens = health.opens_at()
        if opens is not None and now < opens < now + delay:
            delay = opens - now  # wake when the breaker would open, to fail with the others
        if delay > 0:
            self.clock.sleep(delay)

    def _await_verdict(self) -> None:
        """Out of time, while the CA went silent only after this request's first failure (an
        answer to another request came in between): wait, at most one window, until the
        breaker opens or an answer comes. So an outage reads the same for every certificate,
        and a request unlucky in a storm does not declare the CA gone on its own."""
        health = self.transport.health
        until = self.clock.monotonic() + health.window
        while not health.is_open:
            opens, now = health.opens_at(), self.clock.monotonic()
            if opens is None or now >= min(opens, until):
                return
            self.clock.sleep(min(0.25, min(opens, until) - now))


class ProxySettings:
    """The proxy for the CA from the standard variables: ``https_proxy`` (or ``HTTPS_PROXY``)
    for https URLs, and the hosts ``no_proxy`` (or ``NO_PROXY``) exempts.

    Read explicitly because the session does not trust the environment (no netrc, no
    ``REQUESTS_CA_BUNDLE``: the CA's trust comes from ``ca_path``). ``no_proxy`` is a comma-
    separated list of host names (a name matches itself and its subdomains; a leading
    ``.`` or ``*.`` is the same), ``host:port``, IP addresses, CIDR networks, or ``*`` for all.
    """

    def __init__(self, environ: t.Mapping[str, str]) -> None:
        self.https = _env(environ, "https_proxy")
        self.no_proxy = [e.strip().lower() for e in _env(environ, "no_proxy").split(",") if e.strip()]

    def proxy_for(self, url: str) -> str | None:
        """The proxy URL to reach ``url`` through, or None to connect directly."""
        parts = urlsplit(url)
        if parts.scheme != "https" or not self.https or not parts.hostname:
            return None
        host, port = parts.hostname.lower().rstrip("."), parts.port or 443
        if any(_exempt(entry, host, port) for entry in self.no_proxy):
            return None
        return self.https

    def request_args(self, url: str) -> dict[str, t.Any]:
        """``proxies`` for ``session.request``: nothing at all when no proxy is set."""
        if not self.https:
            return {}
        proxy = self.proxy_for(url)
        return {"proxies": {"https": proxy} if proxy else {}}


def _env(environ: t.Mapping[str, str], name: str) -> str:
    """The lower-case variable, else the upper-case one (as curl and requests read them)."""
    value = environ.get(name)
    if value is None:
        value = environ.get(name.upper())
    return (value or "").strip()


def _exempt(entry: str, host: str, port: int) -> bool:
    if entry == "*":
        return True
    if "/" in entry:
        try:
            return ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return False
    name, entry_port = entry, ""
    if entry.startswith("[") and "]:" in entry:  # [2001:db8::1]:8443
        name, entry_port = entry[1:].split("]:", 1)
    elif entry.count(":") == 1:  # ca.example:8443
        name, entry_port = entry.split(":")
    if entry_port and entry_port != str(port):
        return False
    name = name.strip("[]")
    if name.startswith("*."):
        name = name[2:]
    name = name.lstrip(".").rstrip(".")
    return bool(name) and (host == name or host.endswith("." + name))


class Transport:
    """One keep-alive ``requests.Session`` shared by all threads, with a request counter.

    ``server`` names the CA in messages (the client sets its directory URL).
    """

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        verify: bool | str = True,
        retry: RetryPolicy | None = None,
        session: t.Any = None,
        clock: Clock | None = None,
        pool_size: int = 10,
        server: str | None = None,
        environ: t.Mapping[str, str] | None = None,
    ) -> None:
        self.timeout = timeout
        self.proxies = ProxySettings(os.environ if environ is None else environ)
        self.retry = retry or RetryPolicy(budget=2 * timeout)
        self.clock = clock or Clock()
        self.nonces = NoncePool()
        self.nonce_url: str | None = None
        self.server = server
        self.health = CaHealth(self.retry.budget, self.clock)
        self.pause = Pause(self.clock)
        self._session = session
        self._verify, self._pool_size = verify, pool_size
        self._count_lock = threading.Lock()
        self.request_count = 0
        self.bad_nonce_count = 0
        self.lost_replies = 0

    def count_bad_nonce(self) -> None:
        with self._count_lock:
            self.bad_nonce_count += 1

    def count_lost_reply(self) -> None:
        with self._count_lock:
            self.lost_replies += 1

    @staticmethod
    def _new_session(verify: bool | str, pool_size: int) -> requests.Session:
        rq = _requests()
        session = rq.Session()
        session.verify = verify
        session.headers["User-Agent"] = USER_AGENT
        # No netrc or CA bundle from the environment; the proxy variables are read by ProxySettings.
        session.trust_env = False
        adapter = rq.adapters.HTTPAdapter(pool_connections=2, pool_maxsize=max(2, pool_size))
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    @property
    def session(self) -> t.Any:
        """The HTTP session, created on the first request (so is the requests import)."""
        with self._count_lock:
            if self._session is None:
                self._session = self._new_session(self._verify, self._pool_size)
            return self._session

    def close(self) -> None:
        close = getattr(self._session, "close", None)
        if close is not None:
            close()

    def server_name(self, url: str) -> str:
        return self.server or _origin(url)

    def check_reachable(self, **context: t.Any) -> None:
        """AcmeUnreachable when the breaker is open: callers skip work that would only fail."""
        if self.health.is_open:
            self.health.check(self.server or "the ACME server", **context)

    # ------------------------------------------------------------ one attempt

    def _send(self, method: str, url: str, body: bytes | None, headers: dict[str, str],
              pool_nonce: bool = True) -> Response:
        session = self.session
        with self._count_lock:
            self.request_count += 1
        exceptions = _requests().exceptions
        try:
            raw = session.request(method, url, data=body, headers=headers, timeout=self.timeout,
                                  **self.proxies.request_args(url))
        except exceptions.SSLError as exc:
            if _verification_failed(exc):
                raise _TlsError(f"cannot talk to the ACME server at {url}: {_reason(exc)}", url=url) from None
            # A handshake cut off (the server going away mid-way): the request never left.
            raise _NoAnswer(f"cannot reach the ACME server at {url}: the TLS handshake broke off",
                            "the TLS handshake broke off", False, url=url) from None
        except exceptions.RequestException as exc:
            reason, sent = _reason(exc), not _before_sending(exc)
            dropped = sent and not isinstance(exc, exceptions.Timeout)
            raise _NoAnswer(f"cannot reach the ACME server at {url}: {reason}", reason, sent, dropped,
                            url=url) from None
        content = raw.content or b""
        response = Response(raw.status_code, raw.headers, content, getattr(raw, "url", None) or url)
        short = _cut_short(method, response)
        if short:
            # Older urllib3 (Debian 12's 1.26) hands over a truncated body without a word.
            raise _NoAnswer(f"the reply of the ACME server at {url} was cut short ({short})", "reply cut short",
                            True, True, url=url)
        if pool_nonce:
            self.nonces.put(response.headers.get("Replay-Nonce"))
        return response

    def _attempt(self, method: str, url: str, sign: t.Callable[[str], t.Mapping[str, str]] | None,
                 headers: dict[str, str], pool_nonce: bool) -> tuple[Response, str]:
        """One attempt: (response, the URL it answers). A signed request takes a pooled nonce, or
        asks ``HEAD newNonce`` once; a failed HEAD is this attempt's answer (no loop of its own)."""
        if sign is None:
            return self._send(method, url, None, headers, pool_nonce), url
        nonce = self.nonces.take()
        if not nonce:
            if not self.nonce_url:
                raise AcmeError("no newNonce URL: the directory was not fetched")
            # Not pooled: this nonce is used right here, so no other thread may take it too.
            head = self._send("HEAD", self.nonce_url, None, {}, pool_nonce=False)
            nonce = head.headers.get("Replay-Nonce")
            if head.status >= 400 or not nonce:
                if head.status < 400:
                    head.status = 500  # a newNonce without a nonce: retried like a server error
                return head, self.nonce_url
        try:
            response = self._send(method, url, json.dumps(sign(nonce)).encode(), headers)
        except _NoAnswer as exc:
            if not exc.sent:
                self.nonces.put(nonce)  # it never left: still good
            raise
        if response.status >= 400 and "Replay-Nonce" not in response.headers:
            # The CA puts a fresh nonce on every answer it gives (RFC 8555 section 6.5), so this one
            # came from something in front of it (a proxy's 503) and the nonce is most likely
            # unused. Were it not, the CA says badNonce with a new one: one round trip, no harm.
            self.nonces.put(nonce)
        return response, url

    # ------------------------------------------------------------ the retry loop

    def _exchange(self, method: str, url: str, *, sign: t.Callable[[str], t.Mapping[str, str]] | None = None,
                  headers: dict[str, str] | None = None, pool_nonce: bool = True, replay_safe: bool = True,
                  retry_server_errors: bool = True, context: t.Mapping[str, t.Any] | None = None) -> Response:
        """The one retry loop of a request; the last answer, or an exception (see the module doc)."""
        run = _Request(self, url, signed=sign is not None, replay_safe=replay_safe,
                       retry_server_errors=retry_server_errors, context=dict(context or {}))
        while True:
            self.health.check(run.server, **run.context)
            self.pause.wait(run.deadline, **run.context)
            started = (self.clock.monotonic(), self.clock.now())
            try:
                response, answered = self._attempt(method, url, sign, headers or {}, pool_nonce)
            except _TlsError:
                raise  # a certificate that does not verify will not verify on a retry either
            except _NoAnswer as exc:
                run.no_answer(started, exc)
                continue
            if run.answer(started, response, answered):
                return response

    # ------------------------------------------------------------ public calls
    # ------------------------------------------------------------ public calls

    def get(self, url: str, **context: t.Any) -> Response:
        """An unauthenticated GET (directory, renewalInfo), retried; AcmeProblem on an error status."""
        response = self._exchange("GET", url, context=context)
        return self._checked(response, url, context)

    def new_nonce(self) -> str:
        """A nonce from the pool, else from ``HEAD newNonce`` (RFC 8555 section 7.2)."""
        nonce = self.nonces.take()
        if nonce:
            return nonce
        if not self.nonce_url:
            raise AcmeError("no newNonce URL: the directory was not fetched")
        url = self.nonce_url
        response = self._exchange("HEAD", url, pool_nonce=False)
        nonce = response.headers.get("Replay-Nonce")
        if response.status >= 400 or not nonce:
            raise self._error(response, url, {})
        return str(nonce)

    def post(self, url: str, sign: t.Callable[[str], t.Mapping[str, str]], accept: str | None = None,
             replay_safe: bool = True, retry_server_errors: bool = True, **context: t.Any) -> Response:
        """A signed POST; ``sign(nonce)`` builds the JWS. AcmeProblem on an error status.

        ``replay_safe=False``: AcmeReplyLost instead of a second send when the reply of a
        sent request was lost. ``retry_server_errors=False``: a 5xx that carries a problem
        document is the answer (the CA refused), not retried.
        """
        headers = {"Content-Type": JOSE}
        if accept:
            headers["Accept"] = accept
        response = self._exchange("POST", url, sign=sign, headers=headers, replay_safe=replay_safe,
                                  retry_server_errors=retry_server_errors, context=context)
        return self._checked(response, url, context)

    # ------------------------------------------------------------ errors

    def _error(self, response: Response, url: str, context: t.Mapping[str, t.Any]) -> AcmeProblem:
        now = self.clock.now()
        wait = response.retry_after(now)
        return problem_error(response.status, response.content, url, wait,
                             None if wait is None else now + wait, **context)

    def _checked(self, response: Response, url: str, context: t.Mapping[str, t.Any]) -> Response:
        if response.status >= 400:
            raise self._error(response, url, context)
        return response


def _is_bad_nonce(response: Response) -> bool:
    problem = parse_problem(response.content)
    return problem is not None and short_type(str(problem.get("type", ""))) == "badNonce"


def _cut_short(method: str, response: Response) -> str | None:
    """``"12 of 100 bytes"`` when the body is shorter than its Content-Length says; else None."""
    declared = str(response.headers.get("Content-Length") or "").strip()
    encoding = str(response.headers.get("Content-Encoding") or "identity").strip().lower()
    if method == "HEAD" or not (declared.isascii() and declared.isdigit()) or encoding not in ("", "identity") \
            or response.status in (204, 304):
        return None
    if int(declared) == len(response.content):
        return None
    return f"{len(response.content)} of {declared} bytes"


_VERIFY_FAILED = ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed", "doesn't match", "Hostname mismatch",
                  "hostname mismatch", "SSLCertVerificationError")


def _verification_failed(exc: BaseException) -> bool:
    """A TLS error that is the server's certificate (final), not a handshake cut short (retried)."""
    return any(marker in str(exc) for marker in _VERIFY_FAILED)


_NOT_SENT = ("Connection refused", "Failed to establish a new connection", "Name or service not known",
             "Temporary failure in name resolution", "No route to host", "Network is unreachable",
             "nodename nor servname")


def _before_sending(exc: BaseException) -> bool:
    """Whether a requests exception certainly came before the request left (connecting failed)."""
    exceptions = _requests().exceptions
    if isinstance(exc, exceptions.ConnectTimeout):
        return True
    if not isinstance(exc, exceptions.ConnectionError) or isinstance(exc, exceptions.ReadTimeout):
        return False
    from urllib3.exceptions import NewConnectionError  # noqa: PLC0415 - loaded with requests, see above

    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    if isinstance(reason, NewConnectionError):
        return True
    text = str(exc)
    return any(marker in text for marker in _NOT_SENT)


_CONNECTION_REASONS = (
    ("Connection refused", "connection refused"),
    ("Name or service not known", "name or service not known"),
    ("No route to host", "no route to host"),
    ("Temporary failure in name resolution", "temporary failure in name resolution"),
    ("Network is unreachable", "network is unreachable"),
    ("RemoteDisconnected", "the connection closed without a reply"),
    ("without response", "the connection closed without a reply"),
    ("reset by peer", "connection reset"),
    ("ConnectionResetError", "connection reset"),
)


def _reason(exc: BaseException) -> str:
    """A short reason for a requests exception, without urllib3's nested reprs."""
    exceptions = _requests().exceptions
    if isinstance(exc, exceptions.SSLError):
        return "TLS certificate verification failed (set ca_path for a private CA)"
    if isinstance(exc, exceptions.Timeout):
        return "timed out"
    if isinstance(exc, (exceptions.ChunkedEncodingError, exceptions.ContentDecodingError)):
        return "the reply was cut short"
    if not isinstance(exc, exceptions.ConnectionError):
        return type(exc).__name__
    text = str(exc)
    reason = next((reason for marker, reason in _CONNECTION_REASONS if marker in text), "connection failed")
    return _proxy_reason(text, reason) if isinstance(exc, exceptions.ProxyError) else reason


def _proxy_reason(text: str, reason: str) -> str:
    tunnel = re.search(r"Tunnel connection failed: ([^'\")]+)", text)
    if tunnel:
        return f"the proxy (https_proxy) refused the tunnel: {tunnel.group(1).strip()}"
    return f"the proxy (https_proxy) cannot be reached: {reason}"
