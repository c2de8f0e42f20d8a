# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import errno
import os
import socket
import socketserver
import tempfile
import threading
import time
import typing as t
from pathlib import Path

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import RuntimeApiConnectionError
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import commands as cmd
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import transport
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.transport import RuntimeApi
from tests.unit.plugins.module_utils._haproxy.fake_haproxy import FakeHaproxy
from tests.unit.plugins.module_utils._haproxy.testcerts import bundle


@pytest.mark.parametrize(
    ("address", "family", "target"),
    [
        ("/run/haproxy/admin.sock", socket.AF_UNIX, "/run/haproxy/admin.sock"),
        ("unix@/run/haproxy/admin.sock", socket.AF_UNIX, "/run/haproxy/admin.sock"),
        ("admin.sock", socket.AF_UNIX, "admin.sock"),
        ("127.0.0.1:9999", socket.AF_INET, ("127.0.0.1", 9999)),
        ("ipv4@127.0.0.1:9999", socket.AF_INET, ("127.0.0.1", 9999)),
        ("[::1]:9999", socket.AF_INET6, ("::1", 9999)),
        ("ipv6@::1:9999", socket.AF_INET6, ("::1", 9999)),
        ("localhost:9999", socket.AF_INET, ("localhost", 9999)),
    ],
)
def test_parse_address(address: str, family: int, target: t.Any) -> None:
    assert transport.parse_address(address) == (family, target)


@pytest.mark.parametrize("address", ["host:", "host:port", ":9999", "host:70000", "host:\u00b2", "host:\u0661\u0662"])
def test_parse_address_refuses(address: str) -> None:
    with pytest.raises(RuntimeApiConnectionError, match="host:port"):
        transport.parse_address(address)


@pytest.mark.parametrize(
    ("buffer", "reply", "rest"),
    [
        (b"\n> ", b"\n> ", b""),
        (b"Success!\n\n> ", b"Success!\n\n> ", b""),
        (b"a\n\n> b\n\n> ", b"a\n\n> ", b"b\n\n> "),
        (b"Can't remove: in use!\n\n\n> ", b"Can't remove: in use!\n\n\n> ", b""),
        (b"line\n> not the end\n\n> ", b"line\n> not the end\n\n> ", b""),
        (b"partial\n", None, None),
        (b"partial\n\n>", None, None),
    ],
)
def test_split_reply(buffer: bytes, reply: bytes | None, rest: bytes | None) -> None:
    parts = transport.split_reply(buffer)
    assert parts == (None if reply is None else (reply, rest))


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"\n> ", ""),
        (b"+ + + Transaction created for certificate /c/a.pem!\n\n> ", "Transaction created for certificate /c/a.pem!"),
        (b"Committing /c/a.pem\nSuccess!\n\n> ", "Committing /c/a.pem\nSuccess!"),
    ],
)
def test_reply_text(raw: bytes, text: str) -> None:
    assert transport.reply_text(raw) == text


@pytest.fixture
def fake(tmp_path: Path) -> t.Iterator[FakeHaproxy]:
    with FakeHaproxy(tmp_path) as server:
        yield server


def test_many_commands_over_one_connection(fake: FakeHaproxy) -> None:
    pem = cmd.pem_payload(bundle(["a.test"]))
    with RuntimeApi(fake.socket, timeout=2) as api:
        assert "New empty certificate store" in api.run(cmd.new_cert("/etc/haproxy/certs/a.pem"))
        assert (
            api.run(cmd.set_cert("/etc/haproxy/certs/a.pem", pem))
            == "Transaction created for certificate /etc/haproxy/certs/a.pem!"
        )
        assert api.run(cmd.commit_cert("/etc/haproxy/certs/a.pem")).endswith("Success!")
        assert api.run(cmd.show_certs()) == "# filename\n/etc/haproxy/certs/a.pem"
    assert fake.connections == 1
    assert api.sent == [
        "new ssl cert /etc/haproxy/certs/a.pem",
        "set ssl cert /etc/haproxy/certs/a.pem",
        "commit ssl cert /etc/haproxy/certs/a.pem",
        "show ssl cert",
    ]


def test_pipeline_keeps_order(fake: FakeHaproxy) -> None:
    for index in range(70):
        fake.add(f"/etc/haproxy/certs/{index:02d}.pem", None, None)
    names = [f"/etc/haproxy/certs/{i:02d}.pem" for i in range(70)] + ["/etc/haproxy/certs/missing.pem"]
    with RuntimeApi(fake.socket, timeout=2) as api:
        replies = api.run_many([cmd.show_cert(n) for n in names], window=32)
    assert [r.splitlines()[0] for r in replies[:-1]] == [f"Filename: {n}" for n in names[:-1]]
    assert replies[-1].startswith("Can't display the certificate")
    assert fake.connections == 1


def test_tcp_socket(tmp_path: Path) -> None:
    with FakeHaproxy(tmp_path, tcp=True) as server, RuntimeApi(server.socket, timeout=2) as api:
        assert api.run(cmd.show_crt_lists()) == "/etc/haproxy/certs"


def test_missing_socket_names_it(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.sock")
    with pytest.raises(RuntimeApiConnectionError) as info:
        RuntimeApi(path, timeout=1).open()
    assert f"stats socket {path} does not exist" in str(info.value)
    assert info.value.context["socket"] == path


def test_refused_socket_names_it() -> None:
    with tempfile.TemporaryDirectory(prefix="refused") as directory:
        path = os.path.join(directory, "stale.sock")
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(path)  # a socket file nobody listens on: what a dead HAProxy leaves
        stale.close()
        with pytest.raises(RuntimeApiConnectionError, match=r"connection refused.*is HAProxy running") as info:
            RuntimeApi(path, timeout=1).open()
        assert path in str(info.value)


def test_permission_denied_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Root bypasses file modes; the integration test runs as 'nobody' for the real thing.
    def deny(self: socket.socket, address: t.Any) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(socket.socket, "connect", deny)
    with pytest.raises(RuntimeApiConnectionError, match=r"permission denied on HAProxy's stats socket /run/x\.sock"):
        RuntimeApi("/run/x.sock", timeout=1).open()


class _Silent(socketserver.BaseRequestHandler):
    """Accepts, reads, never answers (a hung HAProxy)."""

    def handle(self) -> None:
        self.request.recv(100)
        time.sleep(1.5)


class _Hangup(socketserver.BaseRequestHandler):
    """Answers the prompt, then hangs up on the next command (what HAProxy does past tune.bufsize)."""

    def handle(self) -> None:
        self.request.recv(100)
        self.request.sendall(b"\n> ")
        self.request.recv(100000)
        self.request.sendall(b"+ + ")


@pytest.fixture
def short_dir() -> t.Iterator[str]:
    """A directory with a short path: AF_UNIX socket paths stop at 108 bytes."""
    with tempfile.TemporaryDirectory(prefix="srv") as directory:
        yield directory


def _serve(
    handler: type[socketserver.BaseRequestHandler], directory: str
) -> tuple[socketserver.ThreadingUnixStreamServer, str]:
    path = os.path.join(directory, f"{handler.__name__}.sock")
    server = socketserver.ThreadingUnixStreamServer(path, handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, path


def test_timeout_is_bounded(short_dir: str) -> None:
    server, path = _serve(_Silent, short_dir)
    try:
        start = time.monotonic()
        with pytest.raises(RuntimeApiConnectionError, match=r"did not answer 'prompt' within 0\.3 s"):
            RuntimeApi(path, timeout=0.3).open()
        assert time.monotonic() - start < 1.2
    finally:
        server.shutdown()
        server.server_close()


def test_hangup_mid_reply_mentions_bufsize(short_dir: str) -> None:
    server, path = _serve(_Hangup, short_dir)
    try:
        api = RuntimeApi(path, timeout=2)
        api.open()
        with pytest.raises(RuntimeApiConnectionError, match=r"closed .* while answering 'set ssl cert'.*tune\.bufsize"):
            api.run(cmd.set_cert("/c/a.pem", "x\n"))
        assert not api.is_open
    finally:
        server.shutdown()
        server.server_close()


def test_real_bufsize_overflow_on_fake(fake: FakeHaproxy) -> None:
    fake.state.bufsize = 2000
    with RuntimeApi(fake.socket, timeout=2) as api, pytest.raises(RuntimeApiConnectionError, match="bufsize"):
        api.run(cmd.Command("set ssl cert /etc/haproxy/certs/a.pem", "x" * 3000))


def test_reconnects_after_idle(fake: FakeHaproxy) -> None:
    now = [0.0]
    api = RuntimeApi(fake.socket, timeout=2, clock=lambda: now[0])
    api.open()
    api.run(cmd.show_certs())
    now[0] += transport.IDLE_RECONNECT + 1  # HAProxy's 'stats timeout' may have closed it
    api.run(cmd.show_certs())
    api.close()
    assert fake.connections == 2
