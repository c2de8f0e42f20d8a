# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One connection to HAProxy's Runtime API (stats socket) in prompt mode.

management.txt section 9.3: a connection normally carries one line of commands
and closes; the ``prompt`` command turns it interactive, so many commands share
one connection and every reply ends with an empty line and the prompt ``"> "``.
HAProxy guarantees no command prints an empty line of its own, so "empty line,
then prompt" ends a reply. While a payload (``<<``) is read, HAProxy prints
``"+ "`` per line; those are stripped from the reply.

Every connect, send and receive has a timeout; every failure becomes
RuntimeApiConnectionError naming the socket. A unix path that exists but is no
socket (a regular file, a directory) is a ConfigError before any connect:
connect() would call it "connection refused", as if HAProxy were down.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import time
import typing as t

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _defaults
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import ConfigError, RuntimeApiConnectionError
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.commands import Command

# HAProxy closes an idle CLI connection after `stats timeout` (10 s by default):
# reconnect before sending when we have been quiet for longer than this.
IDLE_RECONNECT = 5.0
_PROMPT = b"\n> "
_RECV_SIZE = 65536


def timeout_option(value: t.Any) -> float:
    """The ``timeout`` option in seconds: _defaults.SOCKET_TIMEOUT when unset; ConfigError unless positive.

    ``float(value or _defaults.SOCKET_TIMEOUT)`` would turn an explicit 0 into the default silently.
    """
    if value is None or value == "":
        return float(_defaults.SOCKET_TIMEOUT)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise ConfigError(f"timeout must be a positive number of seconds, not {value!r}")
    return seconds


def parse_address(address: str) -> tuple[int, t.Any]:
    """Socket family and address for a unix path or ``host:port``.

    Accepts HAProxy's own prefixes too (``unix@``, ``ipv4@``, ``ipv6@``) and
    ``[v6]:port``, so the value can be copied from a ``stats socket`` line.
    """
    text = address.strip()
    for prefix in ("unix@", "abns@"):
        if text.startswith(prefix):
            path = text[len(prefix) :]
            return socket.AF_UNIX, ("\0" + path if prefix == "abns@" else path)
    if text.startswith("/") or text.startswith("./") or ":" not in text:
        return socket.AF_UNIX, text
    for prefix in ("ipv4@", "ipv6@", "tcp@", "tcp4@", "tcp6@"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    host, _sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise RuntimeApiConnectionError(
            f"cannot read the Runtime API address {address!r}: give a unix socket path or host:port",
            socket=address,
        )
    return (socket.AF_INET6 if ":" in host else socket.AF_INET), (host, int(port))


def check_socket_path(address: str) -> None:
    """ConfigError when a unix ``address`` names something that exists and is not a socket.

    A missing path, or one we may not stat, is left to connect() and its own message.
    """
    family, target = parse_address(address)
    if family != socket.AF_UNIX or not isinstance(target, str) or target.startswith("\0"):
        return
    try:
        mode = os.stat(target).st_mode
    except OSError:
        return
    if stat.S_ISSOCK(mode):
        return
    kind = "a directory" if stat.S_ISDIR(mode) else "a regular file" if stat.S_ISREG(mode) else "no socket"
    raise ConfigError(
        f"{target} is not a socket (it is {kind}): socket must name HAProxy's stats socket, the path of a"
        " 'stats socket <path> level admin' line in its global section, or host:port",
        socket=address,
    )


def split_reply(buffer: bytes) -> tuple[bytes, bytes] | None:
    """``(reply, rest)`` once ``buffer`` holds a whole reply, else None.

    A reply ends with an empty line then the prompt: ``"\\n\\n> "``, or is just
    ``"\\n> "`` when the command printed nothing.
    """
    start = 0
    while True:
        index = buffer.find(_PROMPT, start)
        if index < 0:
            return None
        end = index + len(_PROMPT)
        if index == 0 or buffer[index - 1 : index] == b"\n":
            return buffer[:end], buffer[end:]
        start = index + 1


def reply_text(raw: bytes) -> str:
    """The reply without the payload prompts, the closing empty line and the prompt."""
    text = raw[: -len(_PROMPT)].decode("utf-8", "replace")
    while text.startswith("+ "):
        text = text[2:]
    return text.rstrip("\n")


class RuntimeApi:
    """A prompt-mode connection: ``run()`` one command, ``run_many()`` a pipeline.

    ``sent`` lists every command line sent (never a payload), for logs and tests.
    """

    def __init__(
        self,
        address: str,
        timeout: float = _defaults.SOCKET_TIMEOUT,
        clock: t.Callable[[], float] = time.monotonic,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self._family, self._target = parse_address(address)
        self._clock = clock
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._last_io = 0.0
        self.sent: list[str] = []

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> RuntimeApi:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Connect and enter prompt mode (management.txt: ``prompt``)."""
        self.close()
        check_socket_path(self.address)
        sock = socket.socket(self._family, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._target)
        except OSError as exc:
            sock.close()
            raise self._connect_error(exc) from None
        self._sock = sock
        self._buffer = b""
        self._send(b"prompt\n", "prompt")
        self._read_reply("prompt")

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    # ------------------------------------------------------------- commands

    def run(self, command: Command) -> str:
        """Send one command (with its payload) and return HAProxy's reply text."""
        self._ensure_open()
        self._send(command.wire(), command.verb)
        self.sent.append(command.line)
        return self._read_reply(command.verb)

    def run_many(self, commands: t.Sequence[Command], window: int = 32) -> list[str]:
        """Pipeline read-only commands: send ``window`` at a time, then read their replies.

        HAProxy runs them in order on this connection; pipelining saves a round
        trip per command. Replies are returned in the same order.
        """
        replies: list[str] = []
        for start in range(0, len(commands), window):
            chunk = commands[start : start + window]
            self._ensure_open()
            self._send(b"".join(c.wire() for c in chunk), chunk[0].verb)
            self.sent.extend(c.line for c in chunk)
            replies.extend(self._read_reply(c.verb) for c in chunk)
        return replies

    # ------------------------------------------------------------ internals

    @property
    def _conn(self) -> socket.socket:
        if self._sock is None:
            raise RuntimeApiConnectionError(
                f"not connected to HAProxy's Runtime API at {self.address}", socket=self.address
            )
        return self._sock

    def _ensure_open(self) -> None:
        if self._sock is None or self._clock() - self._last_io > IDLE_RECONNECT:
            self.open()

    def _send(self, data: bytes, verb: str) -> None:
        try:
            self._conn.sendall(data)
        except socket.timeout:
            self.close()
            raise self._error(
                f"HAProxy's Runtime API at {self.address} did not accept '{verb}' within {self.timeout:g} s", verb
            ) from None
        except OSError as exc:
            self.close()
            raise self._error(
                f"sending '{verb}' to HAProxy's Runtime API at {self.address} failed: {_reason(exc)}", verb
            ) from None
        self._last_io = self._clock()

    def _read_reply(self, verb: str) -> str:
        deadline = self._clock() + self.timeout
        while True:
            parts = split_reply(self._buffer)
            if parts is not None:
                raw, self._buffer = parts
                self._last_io = self._clock()
                return reply_text(raw)
            if self._clock() > deadline:
                self.close()
                raise self._error(
                    f"HAProxy's Runtime API at {self.address} did not answer '{verb}' within {self.timeout:g} s", verb
                )
            self._buffer += self._recv(verb)

    def _recv(self, verb: str) -> bytes:
        try:
            data = self._conn.recv(_RECV_SIZE)
        except socket.timeout:
            self.close()
            raise self._error(
                f"HAProxy's Runtime API at {self.address} did not answer '{verb}' within {self.timeout:g} s", verb
            ) from None
        except OSError as exc:
            self.close()
            raise self._error(
                f"reading HAProxy's answer to '{verb}' from {self.address} failed: {_reason(exc)}", verb
            ) from None
        if not data:
            self.close()
            raise self._error(
                f"HAProxy closed the Runtime API connection {self.address} while answering '{verb}'"
                " (HAProxy stopped, or a command with its payload exceeded tune.bufsize)",
                verb,
            )
        return data

    def _error(self, msg: str, verb: str) -> RuntimeApiConnectionError:
        return RuntimeApiConnectionError(msg, socket=self.address, command=verb)

    def _connect_error(self, exc: OSError) -> RuntimeApiConnectionError:
        where = self.address
        if exc.errno == errno.ENOENT:
            msg = (
                f"HAProxy's stats socket {where} does not exist: is HAProxy running with"
                f" 'stats socket {where} level admin' in its global section?"
            )
        elif exc.errno == errno.ECONNREFUSED:
            msg = f"nothing accepts connections on HAProxy's stats socket {where} (connection refused): is HAProxy running?"
        elif exc.errno in (errno.EACCES, errno.EPERM):
            msg = (
                f"permission denied on HAProxy's stats socket {where}: run as a user that may open it"
                " (its owner, or a member of its group with 'mode 660' on the stats socket line)"
            )
        elif isinstance(exc, socket.timeout):
            msg = f"connecting to HAProxy's stats socket {where} timed out after {self.timeout:g} s"
        else:
            msg = f"cannot connect to HAProxy's stats socket {where}: {_reason(exc)}"
        return RuntimeApiConnectionError(msg, socket=where)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__
