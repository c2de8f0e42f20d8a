# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A map entry of a running HAProxy, in memory and on disk: the ACME thumbprint it answers with.

The haproxy role's challenge rule reads the account thumbprint from a map file
(``%[str(thumbprint),map(<file>)]``), so that a new account key costs no reload.
management.txt section 9.3: ``show map`` lists the maps HAProxy holds, named by the
file name its configuration gives; ``show map <file>`` dumps their entries (``<ref>
<key> <value>``); ``set map <file> <key> <value>`` changes the value of every entry
with that key, ``add map <file> <key> <value>`` adds one. None of them touches the
file, which HAProxy reads at start and on reload only, so the file is written too,
atomically (a dotfile renamed over it, as certificates are): memory and disk, never
a reload. The same rules as for certificates hold for every word of a command:
whitespace, ``;``, ``\\`` or a control character would split it, so it is refused
before anything is sent.

Plain standard library: no cryptography needed on the host.
"""

from __future__ import annotations

import os
import re
import typing as t
from dataclasses import dataclass

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _defaults
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import (
    ConfigError,
    FileError,
    HaproxyAcmeError,
    RuntimeApiConnectionError,
    RuntimeApiError,
    RuntimeApiVerifyError,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._files import (
    atomic_write,
    file_matches,
    parse_mode,
    read_optional,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.commands import Command, check_name
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.module_args import socket_list, socket_option
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.transport import RuntimeApi, timeout_option
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._module import RunResult

#: Where the haproxy role keeps the map (``<haproxy_maps_dir>/acme-thumbprint.map``), and its key.
_THUMBPRINT = re.compile(r"^[A-Za-z0-9_-]{43}$")
# The map's name sits inside a converter's argument list in haproxy.cfg: no comma, no parenthesis.
_MAP_PATH = re.compile(r"^/[A-Za-z0-9_.@+/-]*$")
_UNKNOWN_MAP = "Unknown map identifier"
FILE_HEADER = (
    "# The ACME account key thumbprint (RFC 7638) that HAProxy's challenge rule answers\n"
    "# http-01 challenges with. tlsops.haproxy_acme.haproxy_acme_thumbprint changes it in\n"
    "# HAProxy's memory (Runtime API) and here, never by a reload.\n"
)

# Socket outcomes, strongest first when summarising.
ADDED, UPDATED, UNCHANGED, NOT_LOADED, UNREACHABLE, FAILED = (
    "added", "updated", "unchanged", "not_loaded", "unreachable", "failed")

ApiFactory = t.Callable[[str, float], RuntimeApi]


def thumbprint_argument_spec() -> dict[str, t.Any]:
    """Options of ``haproxy_acme_thumbprint`` (documented in the module)."""
    return {
        "thumbprint": {"type": "str", "required": True},
        "path": {"type": "str", "default": _defaults.MAP_PATH},
        "key": {"type": "str", "default": _defaults.MAP_KEY, "no_log": False},  # a map key, not a secret
        "socket": socket_option(),
        "timeout": {"type": "float", "default": _defaults.SOCKET_TIMEOUT},
        "require_runtime": {"type": "bool", "default": True},
        "write_file": {"type": "bool", "default": True},
        "owner": {"type": "str"},
        "group": {"type": "str"},
        "mode": {"type": "raw", "default": _defaults.mode_text(_defaults.MAP_MODE)},
    }


# ------------------------------------------------------------------ input


def check_thumbprint(value: t.Any) -> str:
    """``value`` when it is an RFC 7638 SHA-256 thumbprint (43 base64url characters)."""
    if not isinstance(value, str) or not _THUMBPRINT.match(value):
        shown = value if isinstance(value, str) and len(value) <= 80 else f"{str(value)[:80]}..."
        raise ConfigError(
            "thumbprint must be an ACME account key thumbprint (RFC 7638: 43 base64url characters), as"
            f" tlsops.haproxy_acme.acme_account returns it; got {shown!r}",
            thumbprint=shown,
        )
    return value


def check_map_path(path: t.Any) -> str:
    """The map's file name as haproxy.cfg gives it: absolute, one CLI word, no comma or parenthesis."""
    if not isinstance(path, str) or not path:
        raise ConfigError("path must name the map file, e.g. /etc/haproxy/maps/acme-thumbprint.map")
    check_name(path, "map file")
    if not _MAP_PATH.match(path) or path.endswith("/"):
        raise ConfigError(
            f"the map file {path!r} must be an absolute file path of letters, digits and . _ - + @ / only:"
            " haproxy.cfg names it inside the map() converter, and the Runtime API names the map by it",
            path=path,
        )
    return path


def check_key(key: t.Any) -> str:
    check_name(key, "map key")
    if str(key).startswith("#"):
        raise ConfigError(f"the map key {key!r} starts with '#', which HAProxy reads as a comment line", key=key)
    return str(key)


# ------------------------------------------------------------------ commands


def show_maps() -> Command:
    """``show map``: every map HAProxy holds (management.txt 9.3)."""
    return Command("show map")


def show_map(path: str) -> Command:
    return Command(f"show map {check_map_path(path)}")


def set_map(path: str, key: str, value: str) -> Command:
    """``set map <file> <key> <value>``: every entry with that key gets the value."""
    return Command(f"set map {check_map_path(path)} {check_key(key)} {check_name(value, 'map value')}")


def add_map(path: str, key: str, value: str) -> Command:
    """``add map <file> <key> <value>``: a new entry (HAProxy does not check for one already there)."""
    return Command(f"add map {check_map_path(path)} {check_key(key)} {check_name(value, 'map value')}")


# ------------------------------------------------------------------ replies


def parse_map_list(reply: str) -> dict[str, str]:
    """``show map``: file name -> id, from lines ``<id> (<file>) pattern loaded from ...``."""
    maps: dict[str, str] = {}
    for line in reply.splitlines():
        match = re.match(r"^\s*(-?\d+)\s+\((.*?)\)\s", line + " ")
        if match:
            maps[match.group(2)] = match.group(1)
    return maps


def parse_map_entries(reply: str) -> list[tuple[str, str, str]]:
    """``show map <file>``: ``(ref, key, value)`` per entry, from lines ``0x55d0 key value``."""
    entries = []
    for line in reply.splitlines():
        words = line.strip().split(None, 2)
        if len(words) >= 2 and words[0].startswith("0x"):
            entries.append((words[0], words[1], words[2] if len(words) > 2 else ""))
    return entries


def _checked(api: RuntimeApi, command: Command, path: str) -> str:
    """Run a command that prints nothing on success; RuntimeApiError quoting HAProxy otherwise."""
    reply = api.run(command).strip()
    if reply:
        text = " ".join(line.strip() for line in reply.splitlines() if line.strip())
        raise RuntimeApiError(f"'{command.verb}' for {path} on {api.address}: HAProxy answered: {text}",
                              command=command.verb, socket=api.address, path=path, reply=text)
    return reply


def read_values(api: RuntimeApi, path: str, key: str) -> list[str] | None:
    """The values HAProxy's map ``path`` holds for ``key``; None when it holds no such map."""
    listing = api.run(show_maps())
    if path not in parse_map_list(listing):
        if listing.startswith(("Permission denied", "Unknown command")):
            raise RuntimeApiError(f"'show map' on {api.address}: HAProxy answered: {listing.strip()}",
                                  command="show map", socket=api.address)
        return None
    reply = api.run(show_map(path))
    if _UNKNOWN_MAP in reply:
        return None
    return [value for _ref, name, value in parse_map_entries(reply) if name == key]


# ------------------------------------------------------------------ the file


def file_values(data: bytes | None, key: str) -> list[str]:
    """The values a map file gives ``key``, read as HAProxy reads it (configuration.txt, map())."""
    values = []
    for line in (data or b"").decode("utf-8", "replace").splitlines():
        words = line.strip().split(None, 1)
        if words and not words[0].startswith("#") and words[0] == key:
            values.append(words[1].strip() if len(words) > 1 else "")
    return values


def render_file(data: bytes | None, key: str, value: str) -> bytes:
    """The file with ``key`` set to ``value`` once; every other line kept as it was."""
    if data is None:
        return (FILE_HEADER + f"{key} {value}\n").encode("utf-8")
    out: list[str] = []
    placed = False
    for line in data.decode("utf-8", "replace").splitlines():
        words = line.strip().split(None, 1)
        if words and not words[0].startswith("#") and words[0] == key:
            if not placed:
                out.append(f"{key} {value}")
                placed = True
            continue  # a second entry for the key would leave HAProxy a choice
        out.append(line)
    if not placed:
        out.append(f"{key} {value}")
    return ("\n".join(out) + "\n").encode("utf-8")


# ------------------------------------------------------------------ the run


@dataclass
class SocketResult:
    socket: str
    action: str = UNCHANGED
    previous: str | None = None
    reason: str = ""

    def as_dict(self) -> dict[str, t.Any]:
        return {"socket": self.socket, "action": self.action, "previous": self.previous, "reason": self.reason}


@dataclass(frozen=True)
class Target:
    """What a run is asked for: ``key`` = ``value`` in the map ``path``, and how."""

    path: str
    key: str
    value: str
    sockets: tuple[str, ...]
    timeout: float
    required: bool
    write_file: bool
    mode: int
    owner: str | None
    group: str | None

    @classmethod
    def from_params(cls, params: t.Mapping[str, t.Any]) -> Target:
        timeout = timeout_option(params.get("timeout"))
        return cls(
            path=check_map_path(params.get("path") or _defaults.MAP_PATH),
            key=check_key(params.get("key") or _defaults.MAP_KEY),
            value=check_thumbprint(params.get("thumbprint")),
            sockets=tuple(socket_list(params.get("socket"))),
            timeout=timeout,
            required=bool(params.get("require_runtime", True)),
            write_file=bool(params.get("write_file", True)),
            mode=parse_mode(params.get("mode") or _defaults.MAP_MODE),
            owner=params.get("owner") or None,
            group=params.get("group") or None,
        )


def _not_loaded_reason(path: str) -> str:
    return (f"HAProxy holds no map {path}: its running configuration does not read it (a configuration"
            " from before the map, or another file name); the haproxy role's challenge rule reads it"
            " once HAProxy has been reloaded with that configuration")


def _inspect(api: RuntimeApi, entry: SocketResult, target: Target) -> bool:
    """Read the socket's map; whether it needs a change. Sets the action for the other cases."""
    try:
        api.open()
        values = read_values(api, target.path, target.key)
    except RuntimeApiConnectionError as exc:
        if target.required:
            raise
        entry.action, entry.reason = UNREACHABLE, f"{exc.msg}; the file is written for HAProxy's next start"
        return False
    if values is None:
        if target.required:
            raise RuntimeApiError(
                f"{_not_loaded_reason(target.path)}. With require_runtime: false the file alone is written",
                socket=api.address, path=target.path)
        entry.action, entry.reason = NOT_LOADED, _not_loaded_reason(target.path) + "; the file is written for it"
        return False
    entry.previous = values[0] if values else None
    if values and all(v == target.value for v in values):
        entry.action, entry.reason = UNCHANGED, "HAProxy already answers with it"
        return False
    entry.action = UPDATED if values else ADDED
    entry.reason = "new value" if values else f"the map had no {target.key!r} entry"
    return True


def _apply(api: RuntimeApi, entry: SocketResult, target: Target) -> None:
    path, key, value = target.path, target.key, target.value
    command = set_map(path, key, value) if entry.action == UPDATED else add_map(path, key, value)
    _checked(api, command, path)
    after = read_values(api, path, key)
    if not after or any(v != value for v in after):
        raise RuntimeApiVerifyError(
            f"after '{command.verb}', HAProxy's map {path} on {api.address} holds {key} = {after!r},"
            f" not {value!r}", socket=api.address, path=path)


def _write(target: Target, check_mode: bool) -> tuple[bool, bytes | None]:
    """Write the file when it differs; (whether it did or would, what it held before)."""
    if not target.write_file:
        return False, None
    current = read_optional(target.path)
    data = render_file(current, target.key, target.value)
    if file_matches(target.path, data, target.mode, target.owner, target.group):
        return False, current
    if not check_mode:
        directory = os.path.dirname(target.path)
        if not os.path.isdir(directory):
            raise FileError(f"cannot write the map {target.path}: {directory} does not exist", path=target.path)
        atomic_write(target.path, data, mode=target.mode, owner=target.owner, group=target.group)
    return True, current


def run(params: t.Mapping[str, t.Any], check_mode: bool = False, api_factory: ApiFactory = RuntimeApi) -> RunResult:
    """The result, failed when a socket failed. ConfigError, FileError or RuntimeApiError before any change."""
    target = Target.from_params(params)
    apis: list[RuntimeApi] = []
    entries: list[SocketResult] = []
    try:
        # 1. Every socket is read first: a HAProxy that cannot take the value fails the run
        #    before anything changed anywhere.
        due: list[tuple[RuntimeApi, SocketResult]] = []
        for address in target.sockets:
            apis.append(api_factory(address, target.timeout))
            entries.append(SocketResult(address))
            if _inspect(apis[-1], entries[-1], target):
                due.append((apis[-1], entries[-1]))
        # 2. The file, so that a restart answers the same.
        file_changed, before = _write(target, check_mode)
        # 3. HAProxy's memory, socket by socket; one that fails does not stop the others.
        for api, entry in due if not check_mode else []:
            try:
                _apply(api, entry, target)
            except HaproxyAcmeError as exc:
                entry.action, entry.reason = FAILED, exc.msg
    finally:
        for api in apis:
            api.close()
    return _result(target, entries, file_changed, before)


def _result(target: Target, entries: list[SocketResult], file_changed: bool,
            before: bytes | None) -> RunResult:
    key, value = target.key, target.value
    previous = next((e.previous for e in entries if e.previous is not None), None)
    if previous is None:
        previous = next(iter(file_values(before, key)), None)
    header = f"{target.path} (HAProxy and file)"
    result: dict[str, t.Any] = {
        "changed": file_changed or any(e.action in (ADDED, UPDATED) for e in entries),
        "thumbprint": value,
        "previous_thumbprint": previous,
        "path": target.path,
        "key": key,
        "file_changed": file_changed,
        "sockets": [e.as_dict() for e in entries],
        "diff": {"before": f"{key} {previous}\n" if previous else "", "after": f"{key} {value}\n",
                 "before_header": header, "after_header": header},
    }
    failed = [e for e in entries if e.action == FAILED]
    if not failed:
        return RunResult(result)
    first = failed[0]
    if len(entries) == 1:
        return RunResult(result, first.reason)
    return RunResult(result, f"{len(failed)} of {len(entries)} sockets failed; first: {first.socket}: {first.reason}")
