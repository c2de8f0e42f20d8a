# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""HAProxy's configuration in one run: its directories, the files it reads, and haproxy.cfg.

The haproxy role used to write these with a task each (two directories, the hosts map,
the template of haproxy.cfg): on a fleet every task is a module start on every node,
and a run that changes nothing paid for all of them. Here one run does the lot, in the
order HAProxy needs: the directories, then the files haproxy.cfg names (maps), then
haproxy.cfg itself, written to a dotfile beside it, checked with ``haproxy -c`` and only
then renamed over the old one. A configuration HAProxy refuses is never put in place;
the running HAProxy never sees it (a reload is the caller's business, on ``changed``).

:func:`decide` is the whole decision, on a snapshot of what is on disk, so that it can
be tested without a file system. Plain standard library.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import time
import typing as t
from dataclasses import dataclass

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _defaults
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import (
    ConfigError,
    FileError,
    HaproxyAcmeError,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._files import (
    atomic_write,
    owner_ids,
    parse_mode,
    read_optional,
    set_attributes,
    sync_directories,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._module import RunResult

#: What a run does with an entry (RETURN ``directories[].action``, ``files[].action``).
CREATED, UPDATED, ATTRIBUTES, UNCHANGED, KEPT = "created", "updated", "attributes", "unchanged", "kept"
CONFIG_MODE = 0o640  # haproxy.cfg may name a secret (a stats password): root and HAProxy's group
DIRECTORY_MODE = 0o755
VALIDATE = "/usr/sbin/haproxy -c -f %s"
VALIDATE_TIMEOUT = 120.0
_OUTPUT_LINES = 20


def argument_spec() -> dict[str, t.Any]:
    """Options of ``haproxy_config`` (documented in the module)."""
    owner = {"owner": {"type": "str"}, "group": {"type": "str"}}
    return {
        "directories": {"type": "list", "elements": "dict", "default": [], "options": {
            "path": {"type": "path", "required": True},
            "mode": {"type": "raw", "default": _defaults.mode_text(DIRECTORY_MODE)},
            **owner,
        }},
        "files": {"type": "list", "elements": "dict", "default": [], "options": {
            "path": {"type": "path", "required": True},
            "content": {"type": "str", "required": True},
            "mode": {"type": "raw", "default": _defaults.mode_text(_defaults.MAP_MODE)},
            "force": {"type": "bool", "default": True},
            **owner,
        }},
        "config": {"type": "dict", "options": {
            "path": {"type": "path", "required": True},
            "content": {"type": "str", "required": True},
            "mode": {"type": "raw", "default": _defaults.mode_text(CONFIG_MODE)},
            "backup": {"type": "bool", "default": False},
            **owner,
        }},
        "validate": {"type": "str", "default": VALIDATE},
    }


# ------------------------------------------------------------------ input


@dataclass(frozen=True)
class Want:
    """One directory (``content`` None) or file as asked."""

    path: str
    mode: int
    owner: str | None = None
    group: str | None = None
    content: bytes | None = None
    force: bool = True
    backup: bool = False
    uid: int = -1  # owner and group resolved once, when the options are read (-1: not given)
    gid: int = -1

    @property
    def is_directory(self) -> bool:
        return self.content is None


@dataclass(frozen=True)
class Current:
    """What is at a path now: ``kind`` V(directory), V(file), V(other) or None (nothing)."""

    kind: str | None
    mode: int = 0
    uid: int = -1
    gid: int = -1
    content: bytes | None = None


def _path(value: t.Any, what: str) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise ConfigError(f"{what}: path must be an absolute path, got {value!r}", path=value)
    return os.path.normpath(value)


def _want(entry: t.Mapping[str, t.Any], what: str, default_mode: int, directory: bool) -> Want:
    path = _path(entry.get("path"), what)
    try:
        mode = parse_mode(entry.get("mode") if entry.get("mode") is not None else default_mode)
    except ConfigError as exc:
        raise ConfigError(f"{what} {path}: {exc.msg}", path=path) from None
    owner, group = entry.get("owner") or None, entry.get("group") or None
    uid, gid = owner_ids(owner, group)  # an unknown name fails here, before anything is written
    content = None if directory else str(entry.get("content") if entry.get("content") is not None else "").encode()
    return Want(path, mode, owner, group, content, bool(entry.get("force", True)), bool(entry.get("backup", False)),
                uid, gid)


def wants(params: t.Mapping[str, t.Any]) -> tuple[list[Want], list[Want], Want | None]:
    """(directories, files, config) from the options; ConfigError before anything is written."""
    dirs = [_want(e, "directories", DIRECTORY_MODE, True) for e in params.get("directories") or []]
    files = [_want(e, "files", _defaults.MAP_MODE, False) for e in params.get("files") or []]
    config = params.get("config")
    conf = _want(config, "config", CONFIG_MODE, False) if config else None
    paths = [w.path for w in dirs + files + ([conf] if conf else [])]
    twice = sorted({p for p in paths if paths.count(p) > 1})
    if twice:
        raise ConfigError(f"each path may be given once; given more than once: {', '.join(twice)}", path=twice[0])
    return dirs, files, conf


def validate_argv(command: str | None, config: Want | None) -> list[str] | None:
    """The check command as argv with ``%s`` in it, or None (empty: no check)."""
    if config is None or not (command or "").strip():
        return None
    argv = shlex.split(str(command))
    if not any("%s" in word for word in argv):
        raise ConfigError(f"validate must name the new file as %s, got {command!r}", validate=command)
    return argv


# --------------------------------------------------------------- decision


def decide(want: Want, current: Current) -> str:
    """What to do with one entry, given what is there: created, updated, attributes, unchanged or kept.

    A path of the wrong kind (a file where a directory is asked, or the reverse) is an
    error, never replaced: it may be the user's."""
    uid, gid = want.uid, want.gid
    wanted_kind = "directory" if want.is_directory else "file"
    if current.kind is None:
        return CREATED
    if current.kind != wanted_kind:
        raise FileError(f"{want.path} is not a {wanted_kind}; it is left alone", path=want.path)
    if not want.is_directory and current.content != want.content:
        return UPDATED if want.force else KEPT
    if current.mode != want.mode or uid not in (-1, current.uid) or gid not in (-1, current.gid):
        return ATTRIBUTES if want.force or want.is_directory else KEPT
    return UNCHANGED


def snapshot(path: str, read: bool) -> Current:
    """What is at ``path`` now (its bytes when ``read`` and it is a file)."""
    try:
        st = os.stat(path)  # one stat, following a link as every write here does
    except FileNotFoundError:
        return Current(None)
    except OSError as exc:
        raise FileError(f"cannot read {path}: {exc.strerror}", path=path) from exc
    kind = "directory" if stat.S_ISDIR(st.st_mode) else "file" if stat.S_ISREG(st.st_mode) else "other"
    content = read_optional(path) if read and kind == "file" else None
    return Current(kind, st.st_mode & 0o7777, st.st_uid, st.st_gid, content)


# ------------------------------------------------------------------ apply


def _make_directory(want: Want) -> None:
    parent = os.path.dirname(want.path)
    try:
        os.makedirs(parent, DIRECTORY_MODE, exist_ok=True)
        os.mkdir(want.path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise FileError(f"cannot create {want.path}: {exc.strerror}", path=want.path) from exc
    set_attributes(want.path, want.mode, want.owner, want.group)


def _backup(path: str) -> str:
    """A copy of ``path`` beside it, named as Ansible's ``backup: true`` names one."""
    dest = f"{path}.{os.getpid()}.{time.strftime('%Y-%m-%d@%H:%M:%S~')}"
    try:
        shutil.copy2(path, dest)
    except OSError as exc:
        raise FileError(f"cannot back up {path}: {exc.strerror}", path=path) from exc
    return dest


def checker(argv: list[str] | None) -> t.Callable[[str], None] | None:
    """The check of a new haproxy.cfg: ``argv`` with ``%s`` its temporary path."""
    if argv is None:
        return None

    def check(temp: str) -> None:
        command = [word.replace("%s", temp) for word in argv]
        try:
            done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  timeout=VALIDATE_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConfigError(f"cannot run the check {shlex.join(argv)}: {exc}", validate=shlex.join(argv)) from exc
        if done.returncode != 0:
            lines = done.stdout.decode(errors="replace").replace(temp, "<new haproxy.cfg>").splitlines()
            raise ConfigError(
                f"the new configuration fails its check ({shlex.join(argv)}, exit {done.returncode}); the old one is"
                " kept and HAProxy was not touched: " + " | ".join(line.strip() for line in lines[-_OUTPUT_LINES:]),
                validate=shlex.join(argv), rc=done.returncode)

    return check


def _apply(want: Want, action: str, check: t.Callable[[str], None] | None = None) -> str | None:
    """Do ``action``; the backup's path when one was made."""
    if action in (UNCHANGED, KEPT):
        return None
    if want.is_directory:
        if action == CREATED:
            _make_directory(want)
        else:
            set_attributes(want.path, want.mode, want.owner, want.group)
        return None
    if action == ATTRIBUTES:
        set_attributes(want.path, want.mode, want.owner, want.group)
        return None
    if action == CREATED and not os.path.isdir(os.path.dirname(want.path)):
        raise FileError(f"cannot write {want.path}: {os.path.dirname(want.path)} does not exist", path=want.path)
    backups: list[str] = []

    def check_then_back_up(temp: str) -> None:
        # The copy of the old file is made once the new one passed its check, just before the rename.
        if check is not None:
            check(temp)
        if want.backup and action == UPDATED:
            backups.append(_backup(want.path))

    atomic_write(want.path, want.content or b"", want.mode, want.owner, want.group, sync_dir=False,
                 check=check_then_back_up)
    return backups[0] if backups else None


def _diff(want: Want, current: Current, action: str) -> dict[str, t.Any] | None:
    if action in (UNCHANGED, KEPT):
        return None
    if want.is_directory:
        before = {"path": want.path, "state": "absent" if current.kind is None else "directory"}
        after = {"path": want.path, "state": "directory", "mode": _defaults.mode_text(want.mode)}
        if current.kind is not None:
            before["mode"] = _defaults.mode_text(current.mode)
        return {"before_header": want.path, "after_header": want.path, "before": before, "after": after}
    if action == ATTRIBUTES:
        return {"before_header": want.path, "after_header": want.path,
                "before": {"path": want.path, "mode": _defaults.mode_text(current.mode)},
                "after": {"path": want.path, "mode": _defaults.mode_text(want.mode)}}
    return {"before_header": want.path, "after_header": want.path,
            "before": (current.content or b"").decode(errors="replace"),
            "after": (want.content or b"").decode(errors="replace")}


def run(params: t.Mapping[str, t.Any], check_mode: bool = False) -> RunResult:
    """Directories, files, then haproxy.cfg checked before it is in place.

    ConfigError or FileError before anything is written; a haproxy.cfg that fails its
    check is the result's failure, beside what was written before it (the maps). An
    error names the path at fault as ``entry``: a ``path`` in a module's result makes
    Ansible add that file's attributes to it."""
    try:
        return _run(params, check_mode)
    except HaproxyAcmeError as exc:
        entry = exc.context.get("path")
        raise type(exc)(exc.msg, entry=entry if isinstance(entry, str) else None) from exc


def _changes(actions: t.Sequence[str]) -> bool:
    return any(a not in (UNCHANGED, KEPT) for a in actions)


def _run(params: t.Mapping[str, t.Any], check_mode: bool) -> RunResult:
    dirs, files, config = wants(params)
    argv = validate_argv(params.get("validate", VALIDATE), config)
    every = dirs + files + ([config] if config else [])
    currents = [snapshot(w.path, read=not w.is_directory) for w in every]
    actions = [decide(w, c) for w, c in zip(every, currents)]
    report: list[dict[str, t.Any]] = [{"path": w.path, "action": a} for w, a in zip(every, actions)]
    diffs = [d for d in (_diff(w, c, a) for w, c, a in zip(every, currents, actions)) if d is not None]
    result: dict[str, t.Any] = {
        "changed": _changes(actions),
        "directories": report[: len(dirs)],
        "files": report[len(dirs): len(dirs) + len(files)],
        "diff": diffs,
    }
    if config is not None:
        result["config"] = report[-1]
    if check_mode:
        return RunResult(result)
    for want, action in zip(dirs + files, actions):
        _apply(want, action)
    sync_directories(os.path.dirname(w.path) for w, a in zip(dirs + files, actions) if a in (CREATED, UPDATED))
    if config is not None:
        try:
            backup = _apply(config, actions[-1], checker(argv))
        except ConfigError as exc:
            result["config"] = {**result["config"], "action": "failed"}
            result["changed"] = _changes(actions[:-1])
            result.update(exc.context)
            return RunResult(result, failure=exc.msg)
        if backup:
            result["config"]["backup_file"] = backup
        if actions[-1] in (CREATED, UPDATED):
            sync_directories([os.path.dirname(config.path)])
    return RunResult(result)
