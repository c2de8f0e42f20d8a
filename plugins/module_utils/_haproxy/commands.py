# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Runtime API command lines, checked before anything reaches the socket.

HAProxy's CLI splits a line on spaces, treats ``;`` as a command separator and
``\\`` as an escape, and ends a payload at the first empty line
(management.txt section 9.3). A certificate name or crt-list path carrying any
of those, or a newline, would run a different command than the one asked for,
so builders refuse them with ConfigError: nothing is sent.

Up to HAProxy 3.3 a command and its payload must fit in one buffer
(``tune.bufsize``, 16384 bytes by default); when it does not, HAProxy drops the
connection without a word. Measured on 2.6.12: the whole request (command line,
payload, closing empty line) must be at most ``bufsize - 1`` bytes.
"""

from __future__ import annotations

import re
import typing as t
from dataclasses import dataclass, field

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _defaults
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import ConfigError

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)


@dataclass(frozen=True)
class Command:
    """One CLI command; ``payload`` (if any) is sent after ``<<`` and never logged."""

    line: str
    payload: str | None = field(default=None, repr=False)

    @property
    def verb(self) -> str:
        """The command without its arguments, e.g. ``set ssl cert``: safe for messages."""
        return " ".join(self.line.split(" ")[:3])

    def wire(self) -> bytes:
        if self.payload is None:
            return (self.line + "\n").encode("utf-8")
        return (self.line + " <<\n" + self.payload.rstrip("\n") + "\n\n").encode("utf-8")


def check_name(value: str, what: str = "certificate name") -> str:
    """``value`` if HAProxy's CLI would read it as one argument, else ConfigError."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"the {what} is empty")
    # isprintable() is False for control, format, separator and unassigned characters
    # (every whitespace but the plain space, which is tested on its own).
    if not value.isprintable() or " " in value or ";" in value or "\\" in value:
        bad = [ch for ch in value if not ch.isprintable() or ch in " ;\\"]
        shown = ", ".join(sorted({repr(ch) for ch in bad}))
        raise ConfigError(
            f"the {what} {value!r} holds {shown}: HAProxy's CLI would split or end the command there; nothing was sent",
            name=value,
        )
    if value.startswith("*"):
        raise ConfigError(f"the {what} {value!r} starts with '*', which HAProxy reads as a transaction", name=value)
    return value


def pem_payload(data: bytes) -> str:
    """The PEM blocks of ``data`` only, one after another, without empty lines.

    An empty line would end the payload early (management.txt, ``set ssl cert``:
    "it is recommended to inject a PEM file which has been sanitized");
    text between blocks (``Bag Attributes`` from openssl) only costs buffer space.
    """
    text = data.decode("ascii", "replace").replace("\r\n", "\n")
    blocks = []
    for match in _PEM_BLOCK.finditer(text):
        body = "\n".join(line.strip() for line in match.group(2).splitlines() if line.strip())
        blocks.append(f"-----BEGIN {match.group(1)}-----\n{body}\n-----END {match.group(1)}-----\n")
    if not blocks:
        raise ConfigError("no PEM block found in the certificate bundle")
    return "".join(blocks)


def show_info() -> Command:
    """``show info``: process-wide facts at any level; its ``Pid`` names the process (management.txt 9.3)."""
    return Command("show info")


# ------------------------------------------------------------ certificates


def new_cert(name: str) -> Command:
    """``new ssl cert <filename>``: an empty store, to be filled and attached."""
    return Command(f"new ssl cert {check_name(name)}")


def set_cert(name: str, pem: str, bufsize: int = _defaults.BUFSIZE) -> Command:
    """``set ssl cert <filename> <<`` + PEM: opens or updates the transaction."""
    command = Command(f"set ssl cert {check_name(name)}", pem)
    check_fits(command, bufsize, name)
    return command


def commit_cert(name: str) -> Command:
    return Command(f"commit ssl cert {check_name(name)}")


def abort_cert(name: str) -> Command:
    return Command(f"abort ssl cert {check_name(name)}")


def del_cert(name: str) -> Command:
    """``del ssl cert``: only for a certificate no crt-list uses any more."""
    return Command(f"del ssl cert {check_name(name)}")


def show_certs() -> Command:
    return Command("show ssl cert")


# A name no certificate has: HAProxy names stores by their file, and nothing is a file below /dev/null.
PROBE_NAME = "/dev/null/tlsops-haproxy-acme-probe"


def transaction_probe() -> Command:
    """``abort ssl cert`` for PROBE_NAME: which transaction is open, in one short reply.

    HAProxy answers "No ongoing transaction!" or "The ongoing transaction is about
    '<name>'" and aborts nothing, as the name is never the open one. ``show ssl cert``
    says the same, but lists every certificate with it: a reply that grows with them.
    """
    return Command(f"abort ssl cert {PROBE_NAME}")


def show_cert(name: str) -> Command:
    return Command(f"show ssl cert {check_name(name)}")


def show_transaction(name: str) -> Command:
    """``show ssl cert *<filename>``: what the open transaction for it holds."""
    return Command(f"show ssl cert *{check_name(name)}")


# --------------------------------------------------------------- crt-lists


def add_crt_list(crt_list: str, name: str) -> Command:
    """``add ssl crt-list <crtlist> <certificate>``: makes a committed certificate served."""
    return Command(f"add ssl crt-list {check_name(crt_list, 'crt-list')} {check_name(name)}")


def add_crt_list_line(crt_list: str, entry: str, bufsize: int = _defaults.BUFSIZE) -> Command:
    """The payload form: one crt-list line with SSL options and SNI filters (not for directories)."""
    check_name(crt_list, "crt-list")
    if "\n" in entry.strip() or not entry.strip():
        raise ConfigError("a crt-list entry must be exactly one line", entry=entry)
    command = Command(f"add ssl crt-list {crt_list}", entry.strip())
    check_fits(command, bufsize, crt_list)
    return command


def del_crt_list(crt_list: str, name: str) -> Command:
    return Command(f"del ssl crt-list {check_name(crt_list, 'crt-list')} {check_name(name)}")


def show_crt_lists() -> Command:
    return Command("show ssl crt-list")


def show_crt_list(crt_list: str, numbered: bool = False) -> Command:
    flag = "-n " if numbered else ""
    return Command(f"show ssl crt-list {flag}{check_name(crt_list, 'crt-list')}")


# ------------------------------------------------------------------ sizes


def request_size(command: Command) -> int:
    return len(command.wire())


def check_fits(command: Command, bufsize: int, name: str) -> None:
    """ConfigError when HAProxy could not hold the command and its payload in one buffer."""
    size = request_size(command)
    if size > bufsize - 1:
        raise ConfigError(
            f"the bundle for {name} needs {size} bytes on HAProxy's CLI ('{command.verb}' with its payload),"
            f" more than the {bufsize - 1} that tune.bufsize {bufsize} allows: HAProxy would drop the connection."
            " Raise tune.bufsize in HAProxy's global section and the bufsize option with it,"
            " or use a shorter chain",
            name=name,
            size=size,
            bufsize=bufsize,
        )


def names_of(commands: t.Iterable[Command]) -> list[str]:
    """Command lines for logs: never a payload."""
    return [c.line for c in commands]
