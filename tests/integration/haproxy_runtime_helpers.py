# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Test-side tools for the Runtime API integration tests, written independently of the code under test.

A raw CLI client (plain socket, prompt mode), a TLS client that reports the served
serial for an SNI, and HTTPS clients for the load test.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
import typing as t
from dataclasses import dataclass, field

from cryptography import x509


def raw_cli(path: str, *commands: str, timeout: float = 5.0) -> list[str]:
    """Send commands (``"set ssl cert X <<\\n" + PEM`` for payloads) in prompt mode; the replies."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(b"prompt\n")
        _read(sock)
        replies = []
        for command in commands:
            data = command if command.endswith("\n") else command + "\n"
            if "<<\n" in data:
                data = data.rstrip("\n") + "\n\n"
            sock.sendall(data.encode())
            replies.append(_read(sock))
        return replies


def _read(sock: socket.socket) -> str:
    buf = b""
    while not (buf == b"\n> " or buf.endswith(b"\n\n> ")):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"HAProxy closed the connection: {buf!r}")
        buf += chunk
    return buf[:-3].decode().lstrip("+ ").strip()


def haproxy_pid(path: str) -> int:
    (info,) = raw_cli(path, "show info")
    for line in info.splitlines():
        if line.startswith("Pid:"):
            return int(line.split(":", 1)[1])
    raise AssertionError(f"no Pid in show info: {info}")


def open_transaction(path: str) -> bool:
    """Whether HAProxy has an uncommitted certificate transaction."""
    (listing,) = raw_cli(path, "show ssl cert")
    return "# transaction" in listing


def served_serial(port: int, sni: str, host: str = "127.0.0.1", timeout: float = 5.0) -> str | None:
    """Serial (upper-case hex) of what HAProxy serves for ``sni``; None when the handshake fails."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, ctx.wrap_socket(
            raw, server_hostname=sni
        ) as tls:
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return None
    assert der is not None
    return format(x509.load_der_x509_certificate(der).serial_number, "X")


def same_hex(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.lstrip("0").upper() == b.lstrip("0").upper()


# ----------------------------------------------------------------- load


@dataclass
class LoadResult:
    ok: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, ok: bool, error: str = "") -> None:
        with self.lock:
            if ok:
                self.ok += 1
            else:
                self.failed += 1
                if len(self.errors) < 20:
                    self.errors.append(error)


def _tls(port: int, sni: str, timeout: float) -> ssl.SSLSocket:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname=sni)


def _request(conn: ssl.SSLSocket, sni: str) -> bool:
    conn.sendall(f"GET / HTTP/1.1\r\nHost: {sni}\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(4096)
        if not chunk:
            return False
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(4096)
        if not chunk:
            return False
        body += chunk
    return head.startswith(b"HTTP/1.1 200")


def keepalive_client(
    port: int, names: t.Sequence[str], requests: int, result: LoadResult, timeout: float = 5.0
) -> None:
    """One TLS connection per name, many requests over it (reconnects only if HAProxy closes it)."""
    conns: dict[str, ssl.SSLSocket] = {}
    try:
        for index in range(requests):
            sni = names[index % len(names)]
            try:
                conn = conns.get(sni) or _tls(port, sni, timeout)
                conns[sni] = conn
                result.count(_request(conn, sni), f"keep-alive {sni}: bad response")
            except (OSError, ssl.SSLError) as exc:
                conns.pop(sni, None)
                result.count(False, f"keep-alive {sni}: {exc}")
    finally:
        for conn in conns.values():
            conn.close()


def new_connection_client(
    port: int, names: t.Sequence[str], requests: int, result: LoadResult, timeout: float = 5.0
) -> None:
    """A new TLS handshake for every request."""
    for index in range(requests):
        sni = names[index % len(names)]
        try:
            with _tls(port, sni, timeout) as conn:
                result.count(_request(conn, sni), f"new-conn {sni}: bad response")
        except (OSError, ssl.SSLError) as exc:
            result.count(False, f"new-conn {sni}: {exc}")


def wait_for(predicate: t.Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
