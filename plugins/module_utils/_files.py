# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one way this collection writes a file, and what goes with it.

A dotfile in the same directory, created with its final mode before a byte is
written, then renamed over the old file: HAProxy's directory loader (which skips
dotfiles) never sees half a file, and the file being served is never lost. Nothing
is written when content, mode and ownership already match, so a run that changes
nothing touches nothing (check mode asks file_matches()).
"""

from __future__ import annotations

import contextlib
import errno
import grp
import hashlib
import os
import pwd
import secrets
import typing as t

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _defaults
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import ConfigError, FileError


def read_optional(path: str) -> bytes | None:
    """The file's bytes, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FileError(f"cannot read {path}: {exc.strerror}", path=path) from exc


def owner_ids(owner: str | None, group: str | None) -> tuple[int, int]:
    """(uid, gid) of the names; -1 for a name not given; ConfigError for an unknown one."""
    try:
        uid = pwd.getpwnam(owner).pw_uid if owner else -1
    except KeyError:
        raise ConfigError(f"no such user {owner!r}", owner=owner) from None
    try:
        gid = grp.getgrnam(group).gr_gid if group else -1
    except KeyError:
        raise ConfigError(f"no such group {group!r}", group=group) from None
    return uid, gid


def _already_there(path: str, data: bytes, mode: int, uid: int, gid: int) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    if (st.st_mode & 0o7777) != mode or (uid not in (-1, st.st_uid)) or (gid not in (-1, st.st_gid)):
        return False
    if st.st_size != len(data):
        return False
    current = read_optional(path)
    return current is not None and hashlib.sha256(current).digest() == hashlib.sha256(data).digest()


def file_matches(
    path: str,
    data: bytes,
    mode: int = _defaults.BUNDLE_MODE,
    owner: str | None = None,
    group: str | None = None,
) -> bool:
    """Whether atomic_write() would leave ``path`` alone (for check mode)."""
    uid, gid = owner_ids(owner, group)
    return _already_there(path, data, mode, uid, gid)


def parse_mode(value: t.Any) -> int:
    """A file mode from an int (YAML 0640 is already octal) or an octal string such as ``'0640'``."""
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    elif isinstance(value, str) and value.strip().isdigit() and set(value.strip()) <= set("01234567"):
        mode = int(value.strip(), 8)
    else:
        raise ConfigError(f"invalid mode {value!r}: give an octal string such as '0640'")
    if not 0 <= mode <= 0o7777:
        raise ConfigError(f"invalid mode {value!r}: out of range")
    return mode


def attributes_differ(path: str, mode: int, owner: str | None = None, group: str | None = None) -> bool:
    """Whether ``path``'s mode, owner or group differ from those asked."""
    uid, gid = owner_ids(owner, group)
    st = os.stat(path)
    return (st.st_mode & 0o7777) != mode or uid not in (-1, st.st_uid) or gid not in (-1, st.st_gid)


def set_attributes(path: str, mode: int, owner: str | None = None, group: str | None = None) -> bool:
    """Give ``path`` the mode, owner and group asked; False when it already had them."""
    if not attributes_differ(path, mode, owner, group):
        return False
    uid, gid = owner_ids(owner, group)
    try:
        os.chmod(path, mode)
        _chown_if_needed(path, uid, gid)
    except OSError as exc:
        raise FileError(f"cannot set mode/owner of {path}: {exc.strerror}", path=path) from exc
    return True


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(
    path: str,
    data: bytes,
    mode: int = _defaults.BUNDLE_MODE,
    owner: str | None = None,
    group: str | None = None,
    *,
    sync_dir: bool = True,
    check: t.Callable[[str], None] | None = None,
) -> bool:
    """Replace ``path`` with ``data`` so that no reader ever sees a partial file.

    Returns False, touching nothing, when content, mode and ownership already match.
    ``sync_dir=False`` leaves the directory's fsync (which makes the rename survive a
    crash) to the caller, who writes many files and calls :func:`sync_directories`
    once: until then a crash can leave the old file, never a partial one.
    ``check`` is called with the new file's temporary path before the rename (``haproxy
    -c``); what it raises leaves the old file in place and the temporary one removed.
    """
    uid, gid = owner_ids(owner, group)
    if _already_there(path, data, mode, uid, gid):
        return False
    directory = os.path.dirname(os.path.abspath(path))
    temp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    try:
        # The mode is set at creation, before a byte of key material is written.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as exc:
        raise FileError(f"cannot write {path}: {exc.strerror}", path=path) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)  # the umask may have narrowed it
        _chown_if_needed(temp, uid, gid)
        if check is not None:
            check(temp)
        os.rename(temp, path)
    except OSError as exc:
        _discard(temp)
        raise FileError(f"cannot write {path}: {exc.strerror}", path=path) from exc
    except BaseException:
        _discard(temp)
        raise
    if sync_dir:
        _fsync_dir(directory)
    return True


def sync_directories(directories: t.Iterable[str]) -> None:
    """fsync each directory once, after :func:`atomic_write` with ``sync_dir=False``."""
    for directory in sorted(set(directories)):
        _fsync_dir(directory)


def _chown_if_needed(path: str, uid: int, gid: int) -> None:
    """chown only when the owner or group differ: the renewal service may not chown at
    all (its seccomp filter denies @privileged), and in the setgid certificate
    directory a file it creates already has the right owner and group."""
    st = os.stat(path)
    if uid not in (-1, st.st_uid) or gid not in (-1, st.st_gid):
        os.chown(path, uid, gid)


def _discard(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def remove_file(path: str) -> bool:
    """Remove ``path``; False when it was not there."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno == errno.EISDIR:
            raise FileError(f"cannot remove {path}: it is a directory", path=path) from exc
        raise FileError(f"cannot remove {path}: {exc.strerror}", path=path) from exc
    return True
