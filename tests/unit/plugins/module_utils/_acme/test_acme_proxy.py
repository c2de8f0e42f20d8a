# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ACME transport honours https_proxy / HTTPS_PROXY and no_proxy / NO_PROXY, and nothing
else of the environment (no netrc, no CA bundle variables)."""

from __future__ import annotations

import socket
import threading
import typing as t

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import transport as tr
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import AcmeNetworkError
from tests.unit.plugins.module_utils._acme.fake_acme import Response

PROXY = "http://proxy.corp:3128"
CA = "https://acme.example.com/directory"

# (case, environment, URL, proxy expected or None: direct)
CASES: list[tuple[str, dict[str, str], str, str | None]] = [
    ("no variables", {}, CA, None),
    ("https_proxy", {"https_proxy": PROXY}, CA, PROXY),
    ("HTTPS_PROXY", {"HTTPS_PROXY": PROXY}, CA, PROXY),
    ("lower case first", {"https_proxy": PROXY, "HTTPS_PROXY": "http://other:1"}, CA, PROXY),
    ("empty lower case still wins", {"https_proxy": "", "HTTPS_PROXY": "http://other:1"}, CA, None),
    ("http_proxy is not for https", {"http_proxy": PROXY, "HTTP_PROXY": PROXY}, CA, None),
    ("all_proxy is not read", {"all_proxy": PROXY, "ALL_PROXY": PROXY}, CA, None),
    ("only https URLs go through it", {"https_proxy": PROXY}, "http://acme.example.com/directory", None),
    ("no_proxy names the host", {"https_proxy": PROXY, "no_proxy": "acme.example.com"}, CA, None),
    ("NO_PROXY names the host", {"https_proxy": PROXY, "NO_PROXY": "acme.example.com"}, CA, None),
    ("a parent domain", {"https_proxy": PROXY, "no_proxy": "example.com"}, CA, None),
    ("a leading dot", {"https_proxy": PROXY, "no_proxy": ".example.com"}, CA, None),
    ("a leading *.", {"https_proxy": PROXY, "no_proxy": "*.example.com"}, CA, None),
    ("a suffix is no parent domain", {"https_proxy": PROXY, "no_proxy": "ample.com"}, CA, PROXY),
    ("another host", {"https_proxy": PROXY, "no_proxy": "localhost,127.0.0.1"}, CA, PROXY),
    ("in a list, any case, spaces", {"https_proxy": PROXY, "no_proxy": "localhost, ACME.Example.com "}, CA, None),
    ("*", {"https_proxy": PROXY, "no_proxy": "*"}, CA, None),
    ("host:port, that port", {"https_proxy": PROXY, "no_proxy": "acme.example.com:443"}, CA, None),
    ("host:port, another port", {"https_proxy": PROXY, "no_proxy": "acme.example.com:8443"}, CA, PROXY),
    ("an address", {"https_proxy": PROXY, "no_proxy": "10.0.0.5"}, "https://10.0.0.5:14000/dir", None),
    ("a network", {"https_proxy": PROXY, "no_proxy": "10.0.0.0/8"}, "https://10.1.2.3/dir", None),
    ("a network, another address", {"https_proxy": PROXY, "no_proxy": "10.0.0.0/8"}, "https://192.0.2.1/dir", PROXY),
    ("a network, a name", {"https_proxy": PROXY, "no_proxy": "10.0.0.0/8"}, CA, PROXY),
    ("IPv6", {"https_proxy": PROXY, "no_proxy": "::1"}, "https://[::1]:14000/dir", None),
    ("IPv6 with a port", {"https_proxy": PROXY, "no_proxy": "[::1]:14000"}, "https://[::1]:14000/dir", None),
    ("IPv6 network", {"https_proxy": PROXY, "no_proxy": "2001:db8::/32"}, "https://[2001:db8::7]/dir", None),
    ("a trailing dot", {"https_proxy": PROXY, "no_proxy": "example.com."}, "https://acme.example.com./d", None),
    ("empty entries", {"https_proxy": PROXY, "no_proxy": ",,"}, CA, PROXY),
]


@pytest.mark.parametrize(("case", "environ", "url", "expected"), CASES, ids=[c[0] for c in CASES])
def test_proxy_for(case: str, environ: dict[str, str], url: str, expected: str | None) -> None:
    assert tr.ProxySettings(environ).proxy_for(url) == expected, case


class Recording:
    def __init__(self) -> None:
        self.kwargs: list[dict[str, t.Any]] = []

    def request(self, method: str, url: str, **kwargs: t.Any) -> Response:
        self.kwargs.append(kwargs)
        return Response(200, {}, b"{}", url)


@pytest.mark.parametrize(
    ("environ", "sent"),
    [
        ({}, None),  # no proxy set: nothing passed, requests connects directly (trust_env is off)
        ({"HTTPS_PROXY": PROXY}, {"https": PROXY}),
        ({"HTTPS_PROXY": PROXY, "NO_PROXY": "example.com"}, {}),  # exempt: explicitly no proxy
    ],
)
def test_the_session_gets_the_proxy(environ: dict[str, str], sent: dict[str, str] | None) -> None:
    session = Recording()
    tr.Transport(timeout=3, session=session, environ=environ).get(CA)
    assert session.kwargs[0].get("proxies", None) == sent
    assert ("proxies" in session.kwargs[0]) == (sent is not None)


def test_the_process_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("https_proxy", PROXY)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert tr.Transport().proxies.proxy_for(CA) == PROXY


def test_the_real_session_trusts_nothing_else_of_the_environment() -> None:
    session = tr.Transport._new_session(True, 2)
    assert session.trust_env is False and session.proxies == {}


class ConnectRecorder:
    """A proxy that refuses every CONNECT, recording what it was asked for."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.requests: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                self.requests.append(data.split(b"\r\n", 1)[0].decode())
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def close(self) -> None:
        self.server.close()


def test_requests_goes_through_the_proxy() -> None:
    """With requests itself: the CONNECT reaches the proxy, for the CA's host and port."""
    proxy = ConnectRecorder()
    try:
        transport = tr.Transport(timeout=2, retry=tr.RetryPolicy(budget=0.5), environ={"https_proxy": proxy.url})
        with pytest.raises(AcmeNetworkError, match=r"the proxy \(https_proxy\) refused the tunnel: 403 Forbidden"):
            transport.get("https://acme.invalid:14000/dir")
        transport.close()
    finally:
        proxy.close()
    # HTTP/1.0 or 1.1, as the urllib3 release has it
    assert proxy.requests and {r.rsplit("/", 1)[0] for r in proxy.requests} == {"CONNECT acme.invalid:14000 HTTP"}


def test_an_unreachable_proxy_is_named() -> None:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    transport = tr.Transport(
        timeout=2, retry=tr.RetryPolicy(budget=0.3), environ={"https_proxy": f"http://127.0.0.1:{port}"}
    )
    with pytest.raises(AcmeNetworkError, match=r"the proxy \(https_proxy\) cannot be reached: connection refused"):
        transport.get("https://acme.invalid/dir")
    transport.close()
