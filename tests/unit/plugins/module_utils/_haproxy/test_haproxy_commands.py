# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import ConfigError
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import commands as cmd

GOOD_NAMES = [
    "/etc/haproxy/certs/example.com.pem",
    "/etc/haproxy/certs/_.example.com.pem",
    "/etc/haproxy/certs/xn--bcher-kva.example.pem",
    "/etc/haproxy/certs/été.pem",
    "relative.pem",
]
BAD_NAMES = [
    ("", "empty"),
    ("/etc/haproxy/certs/a b.pem", "' '"),
    ("/etc/haproxy/certs/a\nshow info", "'\\n'"),
    ("/etc/haproxy/certs/a\r.pem", "'\\r'"),
    ("/etc/haproxy/certs/a\t.pem", "'\\t'"),
    ("/etc/haproxy/certs/a\x00.pem", "'\\x00'"),
    ("/etc/haproxy/certs/a\x7f.pem", "'\\x7f'"),
    ("/etc/haproxy/certs/a;del ssl cert x.pem", "';'"),
    ("/etc/haproxy/certs/a\\.pem", "'\\\\'"),
    ("/etc/haproxy/certs/a\u2028.pem", "'\\u2028'"),
    ("/etc/haproxy/certs/a\u00a0.pem", "'\\xa0'"),
    ("/etc/haproxy/certs/a\u200b.pem", "'\\u200b'"),
    ("*/etc/haproxy/certs/a.pem", "starts with '*'"),
]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_check_name_accepts(name: str) -> None:
    assert cmd.check_name(name) == name


@pytest.mark.parametrize(("name", "shown"), BAD_NAMES)
def test_check_name_refuses(name: str, shown: str) -> None:
    with pytest.raises(ConfigError) as info:
        cmd.check_name(name)
    assert shown in str(info.value)


@pytest.mark.parametrize(
    "build",
    [
        cmd.new_cert,
        lambda n: cmd.set_cert(n, "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"),
        cmd.commit_cert,
        cmd.abort_cert,
        cmd.del_cert,
        cmd.show_cert,
        lambda n: cmd.add_crt_list("/etc/haproxy/certs", n),
        lambda n: cmd.add_crt_list(n, "/etc/haproxy/certs/a.pem"),
        lambda n: cmd.del_crt_list("/etc/haproxy/certs", n),
        cmd.show_crt_list,
    ],
)
def test_every_builder_checks_names(build: object) -> None:
    with pytest.raises(ConfigError):
        build("/etc/haproxy/certs/x\nshow info")  # type: ignore[operator]


@pytest.mark.parametrize(
    ("command", "wire"),
    [
        (cmd.new_cert("/c/a.pem"), b"new ssl cert /c/a.pem\n"),
        (cmd.show_certs(), b"show ssl cert\n"),
        (cmd.show_crt_list("/c", numbered=True), b"show ssl crt-list -n /c\n"),
        (cmd.add_crt_list("/c", "/c/a.pem"), b"add ssl crt-list /c /c/a.pem\n"),
        (cmd.del_crt_list("/c", "/c/a.pem"), b"del ssl crt-list /c /c/a.pem\n"),
        (cmd.set_cert("/c/a.pem", "L1\nL2\n"), b"set ssl cert /c/a.pem <<\nL1\nL2\n\n"),
        (
            cmd.add_crt_list_line("/c/list", "/c/a.pem [alpn h2] a.test"),
            b"add ssl crt-list /c/list <<\n/c/a.pem [alpn h2] a.test\n\n",
        ),
    ],
)
def test_wire_format(command: cmd.Command, wire: bytes) -> None:
    assert command.wire() == wire


def test_payload_is_never_in_repr_or_verb() -> None:
    command = cmd.set_cert("/c/a.pem", "-----BEGIN PRIVATE KEY-----\nSECRET\n-----END PRIVATE KEY-----\n")
    assert "SECRET" not in repr(command)
    assert command.verb == "set ssl cert"
    assert cmd.names_of([command]) == ["set ssl cert /c/a.pem"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ),
        (
            b"Bag Attributes\n  friendlyName: x\n-----BEGIN CERTIFICATE-----\r\nAAAA\r\n\r\nBBBB\r\n-----END CERTIFICATE-----\r\n\r\n"
            b"\n-----BEGIN EC PRIVATE KEY-----\nCCCC\n-----END EC PRIVATE KEY-----",
            "-----BEGIN CERTIFICATE-----\nAAAA\nBBBB\n-----END CERTIFICATE-----\n"
            "-----BEGIN EC PRIVATE KEY-----\nCCCC\n-----END EC PRIVATE KEY-----\n",
        ),
    ],
)
def test_pem_payload_has_no_empty_line(data: bytes, expected: str) -> None:
    payload = cmd.pem_payload(data)
    assert payload == expected
    assert "\n\n" not in payload


def test_pem_payload_refuses_no_pem() -> None:
    with pytest.raises(ConfigError):
        cmd.pem_payload(b"hello\n")


@pytest.mark.parametrize(("extra", "fits"), [(0, True), (1, False)])
def test_set_cert_size_limit_is_bufsize_minus_one(extra: int, fits: bool) -> None:
    # Measured on HAProxy 2.6.12: 16383 bytes pass, 16384 drop the connection.
    name = "/c/a.pem"
    overhead = len(f"set ssl cert {name} <<\n") + 2  # payload's last newline + the empty line
    payload = "x" * (16383 - overhead + extra)
    if fits:
        assert cmd.request_size(cmd.set_cert(name, payload)) == 16383
    else:
        with pytest.raises(ConfigError, match=r"tune\.bufsize 16384"):
            cmd.set_cert(name, payload)


def test_bufsize_is_an_option() -> None:
    payload = "x" * 20000
    with pytest.raises(ConfigError):
        cmd.set_cert("/c/a.pem", payload)
    assert cmd.set_cert("/c/a.pem", payload, bufsize=32768).payload == payload


@pytest.mark.parametrize("entry", ["", "a\nb"])
def test_crt_list_line_is_one_line(entry: str) -> None:
    with pytest.raises(ConfigError):
        cmd.add_crt_list_line("/c/list", entry)
