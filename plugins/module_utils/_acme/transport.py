# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""HTTP to the ACME server: one keep-alive session, the nonce pool, retries.

RFC 8555 section 6.5: every response carries a fresh ``Replay-Nonce``; keeping them
saves a ``HEAD newNonce`` per request. A ``badNonce`` error is retried at once with
the nonce that error response carried (section 6.5: "retry the request using the new
nonce"). 429, 5xx and connection errors are retried with backoff within a total time
bound, honouring ``Retry-After`` (RFC 9110 section 10.2.3).
"""

from __future__ import annotations

import collections
import email.utils
import importlib.util
import json
import re
import threading
import time
import typing as t
from urllib.parse import urljoin

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.problems import problem_error
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import (
    AcmeError,
    AcmeNetworkError,
    AcmeProblem,
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
        except (ValueError, UnicodeDecodeError):
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
    if value.isdigit():
        return float(value)
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
    """How long and how often to retry 429 / 5xx / connection errors and badNonce."""

    def __init__(
        self,
        budget: float = 60.0,
        attempts: int = 4,
        backoff: float = 0.5,
        backoff_cap: float = 8.0,
        bad_nonce_attempts: int = 10,
    ) -> None:
        self.budget = budget
        self.attempts = attempts
        self.backoff = backoff
        self.backoff_cap = backoff_cap
        self.bad_nonce_attempts = bad_nonce_attempts

    def delay(self, attempt: int) -> float:
        """Backoff before retry ``attempt`` (1-based): backoff, 2x, 4x ... up to the cap."""
        return float(min(self.backoff_cap, self.backoff * (2 ** (attempt - 1))))


def _is_retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


class Transport:
    """One keep-alive ``requests.Session`` shared by all threads, with a request counter."""

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        verify: bool | str = True,
        retry: RetryPolicy | None = None,
        session: t.Any = None,
        clock: Clock | None = None,
        pool_size: int = 10,
    ) -> None:
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.clock = clock or Clock()
        self.nonces = NoncePool()
        self.nonce_url: str | None = None
        self._session = session
        self._verify, self._pool_size = verify, pool_size
        self._count_lock = threading.Lock()
        self.request_count = 0
        self.bad_nonce_count = 0

    @staticmethod
    def _new_session(verify: bool | str, pool_size: int) -> requests.Session:
        rq = _requests()
        session = rq.Session()
        session.verify = verify
        session.headers["User-Agent"] = USER_AGENT
        session.trust_env = False  # no proxy or netrc surprises for a CA we were told to use
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

    # ------------------------------------------------------------ one request

    def _send(self, method: str, url: str, body: bytes | None, headers: dict[str, str],
              pool_nonce: bool = True) -> Response:
        session = self.session
        with self._count_lock:
            self.request_count += 1
        exceptions = _requests().exceptions
        try:
            raw = session.request(method, url, data=body, headers=headers, timeout=self.timeout)
        except exceptions.SSLError as exc:
            raise _TlsError(f"cannot talk to the ACME server at {url}: {_reason(exc)}", url=url) from None
        except exceptions.RequestException as exc:
            raise AcmeNetworkError(f"cannot reach the ACME server at {url}: {_reason(exc)}", url=url) from None
        response = Response(raw.status_code, raw.headers, raw.content or b"", getattr(raw, "url", None) or url)
        if pool_nonce:
            self.nonces.put(response.headers.get("Replay-Nonce"))
        return response

    def _with_retries(self, url: str, send: t.Callable[[], Response]) -> Response:
        """Call ``send`` until it gives a non-retryable answer or the time bound is spent."""
        deadline = self.clock.monotonic() + self.retry.budget
        attempt = 0
        while True:
            attempt += 1
            try:
                response = send()
            except _TlsError:
                raise  # a certificate that does not verify will not verify on a retry either
            except AcmeNetworkError:
                delay = self.retry.delay(attempt)
                if attempt >= self.retry.attempts or self.clock.monotonic() + delay > deadline:
                    raise
                self.clock.sleep(delay)
                continue
            if not _is_retryable_status(response.status):
                return response
            wait = response.retry_after(self.clock.now())
            delay = wait if wait is not None else self.retry.delay(attempt)
            if attempt >= self.retry.attempts or self.clock.monotonic() + delay > deadline:
                return response
            self.clock.sleep(delay)

    # ------------------------------------------------------------ public calls

    def get(self, url: str, **context: t.Any) -> Response:
        """An unauthenticated GET (directory, renewalInfo), retried; AcmeProblem on an error status."""
        response = self._with_retries(url, lambda: self._send("GET", url, None, {}))
        return self._checked(response, url, context)

    def new_nonce(self) -> str:
        """A nonce from the pool, else from ``HEAD newNonce`` (RFC 8555 section 7.2)."""
        nonce = self.nonces.take()
        if nonce:
            return nonce
        if not self.nonce_url:
            raise AcmeError("no newNonce URL: the directory was not fetched")
        url = self.nonce_url
        # Not pooled: this nonce is handed out right here, so no other thread may take it too.
        response = self._with_retries(url, lambda: self._send("HEAD", url, None, {}, pool_nonce=False))
        nonce = response.headers.get("Replay-Nonce")
        if response.status >= 400 or not nonce:
            raise self._error(response, url, {})
        return nonce

    def post(self, url: str, sign: t.Callable[[str], t.Mapping[str, str]], accept: str | None = None,
             **context: t.Any) -> Response:
        """A signed POST; ``sign(nonce)`` builds the JWS. badNonce retried with a fresh nonce."""
        headers = {"Content-Type": JOSE}
        if accept:
            headers["Accept"] = accept
        bad_nonces = 0
        while True:
            response = self._with_retries(
                url, lambda: self._send("POST", url, json.dumps(sign(self.new_nonce())).encode(), headers)
            )
            error = None if response.status < 400 else self._error(response, url, context)
            if error is None:
                return response
            if error.short_type != "badNonce":
                raise error
            bad_nonces += 1
            with self._count_lock:
                self.bad_nonce_count += 1
            if bad_nonces >= self.retry.bad_nonce_attempts:
                error.msg = f"{error.msg} (gave up after {bad_nonces} rejected nonces)"
                error.args = (error.msg,)
                raise error

    # ------------------------------------------------------------ errors

    def _error(self, response: Response, url: str, context: t.Mapping[str, t.Any]) -> AcmeProblem:
        return problem_error(
            response.status, response.content, url, response.retry_after(self.clock.now()), **context
        )

    def _checked(self, response: Response, url: str, context: t.Mapping[str, t.Any]) -> Response:
        if response.status >= 400:
            raise self._error(response, url, context)
        return response


def _reason(exc: BaseException) -> str:
    """A short reason for a requests exception, without urllib3's nested reprs."""
    exceptions = _requests().exceptions
    if isinstance(exc, exceptions.SSLError):
        return "TLS certificate verification failed (set ca_path for a private CA)"
    if isinstance(exc, exceptions.Timeout):
        return "timed out"
    if isinstance(exc, exceptions.ConnectionError):
        text = str(exc)
        for marker in ("Connection refused", "Name or service not known", "No route to host",
                       "Temporary failure in name resolution", "Network is unreachable"):
            if marker in text:
                return marker.lower()
        return "connection failed"
    return type(exc).__name__
