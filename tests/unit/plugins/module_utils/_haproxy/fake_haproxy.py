# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A stand-in for HAProxy's stats socket: a real UnixStreamServer speaking its CLI.

It keeps certificate stores, crt-lists and the one transaction like HAProxy 2.6.12
does, and answers with the reply texts recorded from the real 2.6.12 (see
plugins/module_utils/_haproxy/parse.py). Knobs reproduce what is hard to get from
a real HAProxy on demand: the certificate lock held (``locked``), 2.6's habit of
writing ``set ssl cert B`` into A's open transaction (``v26_set_bug``), a
connection dropped when a request exceeds ``bufsize``, and a restart: a hook
sets ``hangup`` to close the connection without a reply, ``refuse`` closes that
many new connections at once (HAProxy not up yet), and ``restart()`` gives the
state a new process loaded from the crt directory on disk.
"""

from __future__ import annotations

import hashlib
import os
import socketserver
import tempfile
import threading
import typing as t
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID, NameOID

_SHORT = {NameOID.COUNTRY_NAME: "C", NameOID.ORGANIZATION_NAME: "O", NameOID.COMMON_NAME: "CN"}
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _oneline(name: x509.Name) -> str:
    return "".join(f"/{_SHORT.get(a.oid, a.oid.dotted_string)}={a.value!s}" for a in name)


def _validity(cert: x509.Certificate, end: str) -> t.Any:
    # not_valid_*_utc arrived in cryptography 42; Debian 12 ships 38.
    return getattr(cert, f"not_valid_{end}_utc", None) or getattr(cert, f"not_valid_{end}")


def _asn1_time(value: t.Any) -> str:
    return f"{_MONTHS[value.month - 1]} {value.day:2d} {value:%H:%M:%S} {value.year} GMT"


@dataclass
class Store:
    pem: str | None = None

    def certs(self) -> list[x509.Certificate]:
        if not self.pem:
            return []
        blocks = self.pem.split("-----END CERTIFICATE-----")
        return [
            x509.load_pem_x509_certificate((b + "-----END CERTIFICATE-----\n").encode())
            for b in blocks
            if "-----BEGIN CERTIFICATE-----" in b
        ]

    def key_matches(self) -> bool:
        certs = self.certs()
        if not certs or self.pem is None or "PRIVATE KEY-----" not in self.pem:
            return False
        key = t.cast(t.Any, serialization.load_pem_private_key(_key_block(self.pem), None))
        fmt = serialization.PublicFormat.SubjectPublicKeyInfo
        return key.public_key().public_bytes(serialization.Encoding.DER, fmt) == certs[0].public_key().public_bytes(
            serialization.Encoding.DER, fmt
        )


def _key_block(pem: str) -> bytes:
    start = pem.index("-----BEGIN PRIVATE KEY-----")
    end = pem.index("-----END PRIVATE KEY-----") + len("-----END PRIVATE KEY-----")
    return pem[start:end].encode()


@dataclass
class State:
    stores: dict[str, Store] = field(default_factory=dict)
    lists: dict[str, list[str]] = field(default_factory=dict)
    transaction: tuple[str, Store] | None = None
    locked: int = 0  # answer "locked" to this many certificate commands
    level: str = "admin"  # "operator": crt-lists and changes are refused, as HAProxy 2.6 does
    v26_set_bug: bool = True
    bufsize: int = 16384
    pid: int = 4711  # "show info": the worker's Pid, as a reload would change it
    uptime_sec: int = 42
    log: list[str] = field(default_factory=list)
    hangup: bool = False  # close this connection instead of replying (set by a hook)
    refuse: int = 0  # close this many new connections at once
    hooks: dict[str, t.Callable[[State], None]] = field(default_factory=dict)  # before a verb runs (once)
    after: dict[str, t.Callable[[State], None]] = field(default_factory=dict)  # after a verb ran (once)

    def used(self, name: str) -> bool:
        return any(name in members for members in self.lists.values())


class FakeHaproxy:
    """``with FakeHaproxy(tmp_path) as fake: fake.socket ...``; ``fake.state`` is inspectable."""

    def __init__(
        self, directory: str | os.PathLike[str], crt_dir: str = "/etc/haproxy/certs", tcp: bool = False
    ) -> None:
        self.state = State(lists={crt_dir: []})
        self._short_dir: tempfile.TemporaryDirectory[str] | None = None
        self.lock = threading.Lock()
        self.connections = 0
        fake = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                fake.connections += 1
                with fake.lock:
                    if fake.state.refuse:
                        fake.state.refuse -= 1
                        return
                fake.serve(self.rfile, self.wfile)

        self.server: socketserver.BaseServer
        if tcp:
            tcp_server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
            self.socket = f"127.0.0.1:{tcp_server.server_address[1]}"
            self.server = tcp_server
            tcp_server.daemon_threads = True
        else:
            self.socket = os.path.join(str(directory), "haproxy.sock")
            if len(self.socket) > 100:  # AF_UNIX paths stop at 108 bytes
                self._short_dir = tempfile.TemporaryDirectory(prefix="fakeha")
                self.socket = os.path.join(self._short_dir.name, "haproxy.sock")
            unix_server = socketserver.ThreadingUnixStreamServer(self.socket, Handler)
            unix_server.daemon_threads = True
            self.server = unix_server
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> FakeHaproxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._short_dir is not None:
            self._short_dir.cleanup()

    def restart(self, crt_dir: str, refuse: int = 0) -> None:
        """A new process, as HAProxy started again: every file of ``crt_dir`` loaded and served,
        no transaction, a new Pid; ``refuse`` connections are closed first (still starting)."""
        state = self.state
        state.pid += 1
        state.transaction = None
        state.stores = {}
        state.lists = {crt_dir: []}
        for name in sorted(os.listdir(crt_dir)):
            path = os.path.join(crt_dir, name)
            if not name.startswith(".") and os.path.isfile(path):
                with open(path, encoding="ascii") as handle:
                    state.stores[path] = Store(handle.read())
                state.lists[crt_dir].append(path)
        state.refuse = refuse

    def add(self, name: str, pem: bytes | None, crt_list: str | None = "/etc/haproxy/certs") -> None:
        """Preload a store, as if HAProxy had read it at start."""
        self.state.stores[name] = Store(pem.decode() if pem else None)
        if crt_list is not None and pem:
            self.state.lists.setdefault(crt_list, []).append(name)

    # ------------------------------------------------------------ protocol

    def serve(self, rfile: t.Any, wfile: t.Any) -> None:
        prompt = False
        while True:
            raw = rfile.readline()
            if not raw:
                return
            size = len(raw)
            line = raw.decode().rstrip("\n")
            payload_lines: list[str] = []
            if line.endswith(" <<"):
                line = line[:-3]
                while True:
                    more = rfile.readline()
                    size += len(more)
                    if not more or more == b"\n":
                        break
                    payload_lines.append(more.decode().rstrip("\n"))
            if size > self.state.bufsize - 1:
                return  # HAProxy drops the connection
            if line == "prompt":
                prompt = not prompt
                wfile.write(b"\n> " if prompt else b"\n")
                wfile.flush()
                continue
            with self.lock:
                self.state.log.append(line)
                body = self.command(line, "\n".join(payload_lines) + "\n" if payload_lines else None)
                if self.state.hangup:
                    self.state.hangup = False
                    return
            plus = "+ " * len(payload_lines) if prompt else ""
            out = plus + body + ("\n" if body else "") + ("\n> " if prompt else "\n")
            wfile.write(out.encode())
            wfile.flush()
            if not prompt:
                return

    def command(self, line: str, payload: str | None) -> str:
        words = line.split()
        verb = " ".join(words[:3])
        hook = self.state.hooks.pop(verb, None)
        if hook is not None:
            hook(self.state)
        handler = _HANDLERS.get(verb)
        if handler is None:
            return "Unknown command, but maybe one of the following ones is a better match:\n  help"
        if self.state.level != "admin" and (verb == "show ssl crt-list" or not verb.startswith("show")):
            return "Permission denied"
        if self.state.locked and verb.endswith(("ssl cert", "crt-list")):
            self.state.locked -= 1
            return "Can't do that!\nOperations on certificates are currently locked!"
        reply = handler(self.state, words[3:], payload)
        after = self.state.after.pop(verb, None)
        if after is not None:
            after(self.state)
        return reply


# ----------------------------------------------------------------- commands


def _show_cert(state: State, args: list[str], payload: str | None) -> str:
    if not args:
        out = []
        if state.transaction:
            out += ["# transaction", "*" + state.transaction[0]]
        out += ["# filename", *sorted(state.stores)]
        return "\n".join(out) if state.stores or state.transaction else ""
    name = args[0]
    if name.startswith("*"):
        if not state.transaction or state.transaction[0] != name[1:]:
            return "Can't display the certificate: Not found or the certificate is a bundle!"
        return _detail(name, state.transaction[1], "Unused")
    store = state.stores.get(name)
    if store is None:
        return "Can't display the certificate: Not found or the certificate is a bundle!"
    status = "Empty" if not store.pem else ("Used" if state.used(name) else "Unused")
    return _detail(name, store, status)


def _detail(name: str, store: Store, status: str) -> str:
    lines = [f"Filename: {name}", f"Status: {status}"]
    certs = store.certs()
    if certs:
        leaf = certs[0]
        sans = t.cast(
            x509.SubjectAlternativeName,
            leaf.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value,
        )
        serial = format(leaf.serial_number, "X")
        lines += [
            f"Serial: {serial if len(serial) % 2 == 0 else '0' + serial}",
            f"notBefore: {_asn1_time(_validity(leaf, 'before'))}",
            f"notAfter: {_asn1_time(_validity(leaf, 'after'))}",
            "Subject Alternative Name: " + ", ".join(f"DNS:{d}" for d in sans.get_values_for_type(x509.DNSName)),
            "Algorithm: EC256",
            f"SHA1 FingerPrint: {hashlib.sha1(leaf.public_bytes(serialization.Encoding.DER)).hexdigest().upper()}",
            f"Subject: {_oneline(leaf.subject)}",
            f"Issuer: {_oneline(leaf.issuer)}",
        ]
        for ca in certs[1:]:
            lines += [f"Chain Subject: {_oneline(ca.subject)}", f"Chain Issuer: {_oneline(ca.issuer)}"]
    lines.append("OCSP Response Key: ")
    return "\n".join(lines)


def _new_cert(state: State, args: list[str], payload: str | None) -> str:
    name = args[0]
    if name in state.stores:
        return f"Certificate '{name}' already exists!"
    state.stores[name] = Store()
    return f"New empty certificate store '{name}'!"


def _set_cert(state: State, args: list[str], payload: str | None) -> str:
    name = args[0]
    if state.transaction and state.transaction[0] != name and not state.v26_set_bug:
        owner = state.transaction[0]
        return f"The ongoing transaction is about '{owner}' but you are trying to set '{name}'\nCan't update {name}!"
    if not state.transaction and name not in state.stores:
        return f"Can't replace a certificate which is not referenced by the configuration!\nCan't update {name}!"
    if not payload or "-----BEGIN CERTIFICATE-----" not in payload:
        return f"unable to load certificate from file '{name}'.\nCan't load the payload\nCan't update {name}!"
    if state.transaction:
        owner = state.transaction[0]  # 2.6.12: whatever the name, the open transaction gets it
        state.transaction = (owner, Store(payload))
        return f"Transaction updated for certificate {owner}!"
    state.transaction = (name, Store(payload))
    return f"Transaction created for certificate {name}!"


def _commit_cert(state: State, args: list[str], payload: str | None) -> str:
    name = args[0]
    if not state.transaction:
        return f"No ongoing transaction! !\nCan't commit {name}!"
    if state.transaction[0] != name:
        return f"The ongoing transaction is about '{state.transaction[0]}' but you are trying to set '{name}'\nCan't commit {name}!"
    store = state.transaction[1]
    if not store.key_matches():
        return f"inconsistencies between private key and certificate loaded '{name}'.\nCan't commit {name}!"
    state.stores[name] = store
    state.transaction = None
    return f"Committing {name}\nSuccess!"


def _abort_cert(state: State, args: list[str], payload: str | None) -> str:
    name = args[0]
    if not state.transaction:
        return "No ongoing transaction!"
    if state.transaction[0] != name:
        return f"The ongoing transaction is about '{state.transaction[0]}' but you are trying to abort a transaction for '{name}'"
    state.transaction = None
    return f"Transaction aborted for certificate '{name}'!"


def _del_cert(state: State, args: list[str], payload: str | None) -> str:
    name = args[0]
    if state.transaction and state.transaction[0] == name:
        return f"Can't remove the certificate: ongoing transaction for the certificate '{name}'"
    if name not in state.stores:
        return f"Can't remove the certificate: certificate '{name}' doesn't exist!\n"
    if state.used(name):
        return f"Can't remove the certificate: certificate '{name}' in use, can't be deleted!\n"
    del state.stores[name]
    return f"Certificate '{name}' deleted!"


def _add_crt_list(state: State, args: list[str], payload: str | None) -> str:
    crt_list = args[0]
    if crt_list not in state.lists:
        return f"Can't edit the crt-list: crt-list '{crt_list}' does not exist!"
    name = args[1] if len(args) > 1 else (payload or "").split()[0]
    if not name.startswith(crt_list + "/"):
        return f"Can't edit the crt-list: '{crt_list}' is a directory, certificate path '{name}' must contain the directory path"
    store = state.stores.get(name)
    if store is None:
        return f"Can't edit the crt-list: certificate '{name}' does not exist!"
    if not store.pem:
        return f"Can't edit the crt-list: certificate '{name}' is empty!"
    if name in state.lists[crt_list]:
        return "Can't edit the crt-list: file already exists in this directory!"
    state.lists[crt_list].append(name)
    return f"Inserting certificate '{name}' in crt-list '{crt_list}'.\nSuccess!"


def _del_crt_list(state: State, args: list[str], payload: str | None) -> str:
    crt_list, name = args[0], args[1]
    store = state.stores.get(name)
    if store is not None and not store.pem:
        return f"Can't delete the entry: certificate '{name}' is empty!"
    if name not in state.lists.get(crt_list, []):
        return f"Can't delete the entry: certificate '{name}' can't be found in crt-list '{crt_list}'!"
    state.lists[crt_list].remove(name)
    return f"Entry '{name}' deleted in crtlist '{crt_list}'!"


def _show_crt_list(state: State, args: list[str], payload: str | None) -> str:
    numbered = bool(args) and args[0] == "-n"
    rest = args[1:] if numbered else args
    if not rest:
        return "\n".join(sorted(state.lists))
    crt_list = rest[0]
    if crt_list not in state.lists:
        return "didn't find the specified filename"
    lines = [f"# {crt_list}"]
    for index, name in enumerate(state.lists[crt_list], 1):
        lines.append(f"{name}:{index}" if numbered else name)
    return "\n".join(lines)


def _show_info(state: State, args: list[str], payload: str | None) -> str:
    # The first lines of 2.6.12's reply (management.txt "show info"), in its order.
    return "\n".join(
        [
            "Name: HAProxy",
            "Version: 2.6.12-1+deb12u1",
            "Release_date: 2023/03/20",
            "Nbthread: 2",
            "Nbproc: 1",
            "Process_num: 1",
            f"Pid: {state.pid}",
            f"Uptime: 0d 0h00m{state.uptime_sec:02d}s",
            f"Uptime_sec: {state.uptime_sec}",
            "Memmax_MB: 0",
        ]
    )


_HANDLERS: dict[str, t.Callable[[State, list[str], str | None], str]] = {
    "show info": _show_info,
    "show ssl cert": _show_cert,
    "new ssl cert": _new_cert,
    "set ssl cert": _set_cert,
    "commit ssl cert": _commit_cert,
    "abort ssl cert": _abort_cert,
    "del ssl cert": _del_cert,
    "add ssl crt-list": _add_crt_list,
    "del ssl crt-list": _del_crt_list,
    "show ssl crt-list": _show_crt_list,
}
