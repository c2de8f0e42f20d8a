# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One run at a time per certificate directory: the host's timer job and a playbook.

Both the renewal job (as the ACME user) and ``acme_stateless_order`` on the host (as
root, from ``site`` or ``renew``) decide from and write ``<cert dir>/<name>.pem``. Two
of them at once would both order what is due. ``held`` takes an exclusive ``flock`` on
a dotfile in that directory (HAProxy's directory loader skips dotfiles), waiting a
bounded time; the second run then finds the first one's certificates valid.

The lock is re-entrant within a thread, so the job can hold it across ordering and
deploying while the ordering layer takes it again. Another thread of the same process
waits like another process would: flock alone would let it in or deadlock it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
import typing as t

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _defaults
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import FileError

LOCK_NAME = ".tlsops-haproxy-acme.lock"
_POLL = 0.05

# path -> [owning thread, depth]; waiters are woken when a path is released.
_owners: dict[str, list[int]] = {}
_released = threading.Condition()


def lock_path(directory: str) -> str:
    return os.path.join(directory, LOCK_NAME)


def _open(path: str) -> int:
    try:
        # Read-only is enough for flock; 0640 in the setgid certificate directory lets
        # the ACME user (group haproxy) and root share one file.
        return os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o640)
    except OSError as exc:
        raise FileError(f"cannot open the lock file {path}: {exc.strerror}", path=path) from exc


def _acquire(fd: int, path: str, timeout: float, waited: float = 0.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise FileError(f"cannot lock {path}: {exc.strerror}", path=path) from exc
        if time.monotonic() >= deadline:
            raise _busy(path, waited + timeout)
        time.sleep(_POLL)


def _busy(path: str, timeout: float) -> FileError:
    return FileError(
        f"another run holds the lock {path} (the renewal timer's job or a playbook); "
        f"gave up after {timeout:g} s: run again once it has finished",
        path=path,
    )


@contextlib.contextmanager
def held(directory: str, timeout: float = _defaults.LOCK_TIMEOUT) -> t.Iterator[None]:
    """Hold the directory's run lock for the ``with`` block; FileError after ``timeout`` seconds."""
    path = lock_path(os.path.abspath(directory))
    me = threading.get_ident()
    deadline = time.monotonic() + timeout
    with _released:
        while path in _owners and _owners[path][0] != me:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _busy(path, timeout)
            _released.wait(left)
        outer = path not in _owners
        if outer:
            _owners[path] = [me, 0]
        _owners[path][1] += 1
    fd = -1
    try:
        if outer:
            fd = _open(path)
            left = max(0.0, deadline - time.monotonic())
            _acquire(fd, path, left, waited=timeout - left)
        yield
    finally:
        if fd >= 0:
            os.close(fd)  # closing releases the flock
        with _released:
            _owners[path][1] -= 1
            if _owners[path][1] == 0:
                del _owners[path]
                _released.notify_all()


def run_lock(directory: str, timeout: float | None = None, enabled: bool = True) -> t.ContextManager[None]:
    """``held`` for a run that may write in ``directory``; no lock for a dry run, or where the
    directory is missing or read-only (the run then reports that per certificate)."""
    if not enabled or not os.path.isdir(directory) or not os.access(directory, os.W_OK | os.X_OK):
        return contextlib.nullcontext()
    return held(directory, _defaults.LOCK_TIMEOUT if timeout is None else float(timeout))
