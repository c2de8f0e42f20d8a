# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A fault-injecting HTTPS proxy between an ACME client and pebble, on loopback. Standard library only.

It terminates TLS with the lab's listener certificate (the client keeps ``ca_path`` =
the lab's ``acme_ca_path``), forwards each request to pebble over TLS on a keep-alive
connection of its own, and injects, for a share of the requests:

* ``unavailable``: an answer of its own, ``status`` 503 (empty body) or 429 (a
  ``rateLimited`` problem document), with ``Retry-After: <retry_after>``, not forwarded;
* ``reset_before``: the request is read, then the connection reset (RST), not forwarded;
* ``reset_after``: the request is forwarded and answered by pebble, then the connection
  reset instead of the reply: pebble acted, the client never hears of it;
* ``truncate``: pebble's reply, its body cut to half while ``Content-Length`` still says
  the whole, then the connection closed;
* ``delay``: seconds to wait before forwarding (for a ``delay_share`` of requests); past
  the client's timeout the request still reaches pebble, after the client gave up.

``paths``, ``methods`` and ``limit`` narrow the faults to some requests, at most so many.

pebble builds every URL it sends from the request's ``Host`` (``relativeEndpoint``), and
checks the JWS ``url`` against it: the proxy forwards ``Host`` as the client sent it, so
the directory, orders, ``Location`` and ``Link`` name the proxy. Whatever still names
pebble's own address (a build that would not) is rewritten in bodies, ``Location`` and
``Link``, so the client never bypasses the proxy.

From Python::

    with Lab(tmp) as info: ...                    # or lab.fault_proxy(...) on a running Lab
    proxy = lab.fault_proxy(unavailable=0.3, retry_after="1")
    proxy.directory                               # pebble's directory through the proxy
    proxy.set(reset_after=0.2)                    # other faults from now on
    proxy.counts                                  # {"requests": ..., "reset_after": ..., ...}

By hand, in front of a lab started with ``python -m tests.lab.lab start --dir .lab/x``::

    python -m tests.lab.faultproxy --lab-dir .lab/x --unavailable 0.3 --retry-after 1
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import random
import socket
import ssl
import struct
import sys
import threading
import time
import typing as t
from dataclasses import asdict, dataclass, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

KINDS = ("unavailable", "reset_before", "reset_after", "truncate")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "content-length", "accept-encoding"}
OWN = {"date", "server"}  # http.server sends its own
RATE_LIMITED = {"type": "urn:ietf:params:acme:error:rateLimited", "detail": "fault proxy: rate limited", "status": 429}


@dataclass
class Faults:
    """What to inject; shares are fractions of the requests that match ``paths`` and ``methods``."""

    unavailable: float = 0.0
    status: int = 503
    retry_after: str | None = "1"
    reset_before: float = 0.0
    reset_after: float = 0.0
    truncate: float = 0.0
    delay: float = 0.0
    delay_share: float = 1.0
    paths: tuple[str, ...] = ()  # parts of the path; empty: every path
    methods: tuple[str, ...] = ()  # empty: every method
    limit: int | None = None  # at most this many faults (delays included) from now on
    seed: int | None = None

    def __post_init__(self) -> None:
        total = self.unavailable + self.reset_before + self.reset_after + self.truncate
        if not 0 <= total <= 1 or not 0 <= self.delay_share <= 1 or self.delay < 0:
            raise ValueError(f"fault shares must be between 0 and 1 in all: {self}")
        if self.status not in (429, 503):
            raise ValueError(f"status is 429 or 503, not {self.status}")


@dataclass
class _Decision:
    kind: str | None = None
    delay: float = 0.0


class FaultProxy:
    """An HTTPS proxy to ``upstream`` (pebble's origin) on ``listen``, with :class:`Faults`."""

    def __init__(self, upstream: str, cert: str | Path, key: str | Path, ca: str | Path,
                 listen: str = "127.0.0.1", port: int = 0, directory_path: str = "/dir", **faults: t.Any) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "https" or not parts.hostname or not parts.port:
            raise ValueError(f"upstream must be https://host:port, not {upstream!r}")
        self.upstream_host, self.upstream_port = str(parts.hostname), int(parts.port)
        self.upstream = f"https://{self.upstream_host}:{self.upstream_port}"
        self.directory_path = directory_path
        self._server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_ctx.load_cert_chain(str(cert), str(key))
        self._client_ctx = ssl.create_default_context(cafile=str(ca))
        self._server = _Server((listen, port), _Handler, self)
        self.origin = f"https://{listen}:{self._server.server_port}"
        self._lock = threading.Lock()
        self._faults = Faults(**faults)
        self._rng = random.Random(self._faults.seed)
        self._injected = 0
        self.counts: dict[str, int] = dict.fromkeys(("requests", "forwarded", "delayed", *KINDS), 0)
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------- lifecycle

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="faultproxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def directory(self) -> str:
        """The ACME directory URL through the proxy."""
        return self.origin + self.directory_path

    # ----------------------------------------------------------- faults

    @property
    def faults(self) -> Faults:
        return self._faults

    def set(self, **faults: t.Any) -> None:
        """Inject these faults from now on (all others off); counts go on."""
        with self._lock:
            self._faults = Faults(**faults)
            self._rng = random.Random(self._faults.seed)
            self._injected = 0

    def clear(self) -> None:
        self.set()

    def reset_counts(self) -> None:
        with self._lock:
            self.counts = dict.fromkeys(self.counts, 0)

    def count(self, name: str, add: int = 1) -> None:
        with self._lock:
            self.counts[name] += add

    def decide(self, method: str, path: str) -> _Decision:
        with self._lock:
            self.counts["requests"] += 1
            faults = self._faults
            if faults.paths and not any(part in path for part in faults.paths):
                return _Decision()
            if faults.methods and method not in faults.methods:
                return _Decision()
            if faults.limit is not None and self._injected >= faults.limit:
                return _Decision()
            decision = _Decision()
            if faults.delay and self._rng.random() < faults.delay_share:
                decision.delay = faults.delay
                self.counts["delayed"] += 1
            roll, edge = self._rng.random(), 0.0
            for kind in KINDS:
                edge += getattr(faults, kind)
                if roll < edge:
                    decision.kind = kind
                    self.counts[kind] += 1
                    break
            if decision.kind or decision.delay:
                self._injected += 1
            return decision

    def rewrite(self, data: bytes) -> bytes:
        """pebble's own address, wherever it still appears, becomes the proxy's."""
        return data.replace(self.upstream.encode(), self.origin.encode())

    def upstream_connection(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.upstream_host, self.upstream_port, context=self._client_ctx,
                                           timeout=60)

    def as_dict(self) -> dict[str, t.Any]:
        return {"origin": self.origin, "directory": self.directory, "upstream": self.upstream,
                "faults": asdict(self._faults), "counts": dict(self.counts)}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__(address, handler)

    def finish_request(self, request: t.Any, client_address: t.Any) -> None:
        """TLS in the connection's own thread, so a slow handshake holds up no one else."""
        try:
            request = self.proxy._server_ctx.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            with contextlib.suppress(OSError):
                request.close()
            return
        try:
            super().finish_request(request, client_address)
        finally:
            with contextlib.suppress(OSError):
                request.close()

    def handle_error(self, request: t.Any, client_address: t.Any) -> None:
        pass  # a client that went away mid-reply is what faults are about


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 30  # an idle keep-alive connection is closed after this

    def log_message(self, format: str, *args: t.Any) -> None:
        pass

    def do_GET(self) -> None:
        self._proxy()

    def do_HEAD(self) -> None:
        self._proxy()

    def do_POST(self) -> None:
        self._proxy()

    # ----------------------------------------------------------- one request

    def _proxy(self) -> None:
        proxy = self.server.proxy
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        decision = proxy.decide(self.command, self.path)
        if decision.kind == "unavailable":
            self._unavailable(proxy.faults)
            return
        if decision.kind == "reset_before":
            self._reset()
            return
        if decision.delay:
            time.sleep(decision.delay)
        try:
            status, headers, content = self._forward(body)
        except (OSError, http.client.HTTPException):
            self._reset()  # pebble is gone: so is the connection
            return
        proxy.count("forwarded")
        if decision.kind == "reset_after":
            self._reset()
            return
        content = proxy.rewrite(content)
        try:
            self.send_response(status)
            for name, value in headers:
                if name.lower() in HOP_BY_HOP or name.lower() in OWN:
                    continue
                if name.lower() in ("location", "link"):
                    self.send_header(name, proxy.rewrite(value.encode("latin-1")).decode("latin-1"))
                else:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            if decision.kind == "truncate":
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(content[: len(content) // 2])
                self.close_connection = True
                return
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(content)
        except OSError:
            self.close_connection = True  # the client gave up (a delay past its timeout)

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """The request to pebble on this connection's own upstream connection; one reconnect if stale."""
        headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP}
        for attempt in (1, 2):
            upstream = getattr(self, "_upstream", None) or self.server.proxy.upstream_connection()
            self._upstream = upstream
            try:
                upstream.request(self.command, self.path, body=body if body or self.command == "POST" else None,
                                 headers=headers)
                response = upstream.getresponse()
                content = response.read()
                return response.status, response.getheaders(), content
            except (OSError, http.client.HTTPException):
                upstream.close()
                self._upstream = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _unavailable(self, faults: Faults) -> None:
        content = json.dumps(RATE_LIMITED).encode() if faults.status == 429 else b""
        self.send_response(faults.status)
        if faults.retry_after is not None:
            self.send_header("Retry-After", faults.retry_after)
        if content:
            self.send_header("Content-Type", "application/problem+json")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    def _reset(self) -> None:
        """An RST, not a clean close: linger zero, then close at once (the read buffer holds a
        reference to the socket that would defer the close past the server's FIN)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()
            self.connection.close()

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        upstream = getattr(self, "_upstream", None)
        if upstream is not None:
            upstream.close()


def _field_names() -> list[str]:
    return [f.name for f in fields(Faults)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tests.lab.faultproxy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lab-dir", required=True, help="a running lab's directory (its lab.json)")
    parser.add_argument("--port", type=int, default=0)
    for name in ("unavailable", "reset_before", "reset_after", "truncate", "delay", "delay_share"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=None)
    parser.add_argument("--status", type=int, default=None)
    parser.add_argument("--retry-after", default=None)
    parser.add_argument("--path", action="append", default=[], help="only requests whose path contains this")
    args = parser.parse_args(argv)
    info = json.loads((Path(args.lab_dir) / "lab.json").read_text())
    lab_dir = Path(info["dir"])
    faults = {name: getattr(args, name) for name in _field_names() if getattr(args, name, None) is not None}
    if args.path:
        faults["paths"] = tuple(args.path)
    proxy = FaultProxy(info["acme_directory"], lab_dir / "listener.pem", lab_dir / "listener.key",
                       info["acme_ca_path"], port=args.port,
                       directory_path=urlsplit(info["acme_directory"]).path, **faults)
    with proxy:
        print(json.dumps(proxy.as_dict(), indent=2), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
