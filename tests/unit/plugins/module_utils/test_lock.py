# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The per-directory run lock: exclusive across processes, re-entrant within one, bounded wait."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _lock
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import FileError

HOLD = textwrap.dedent("""
    import sys, time
    from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _lock
    with _lock.held(sys.argv[1]):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def _holder(directory: Path, seconds: float) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(directory), str(seconds)], stdout=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_waits_then_gets_it(tmp_path: Path) -> None:
    proc = _holder(tmp_path, 0.5)
    start = time.monotonic()
    with _lock.held(str(tmp_path), timeout=10):
        waited = time.monotonic() - start
    proc.wait(timeout=10)
    assert 0.2 < waited < 5
    assert (tmp_path / _lock.LOCK_NAME).exists()


def test_the_wait_is_bounded_and_says_why(tmp_path: Path) -> None:
    proc = _holder(tmp_path, 5)
    try:
        start = time.monotonic()
        with pytest.raises(FileError, match=r"another run holds the lock .*\.tlsops-haproxy-acme\.lock .*"
                                            r"gave up after 0\.3 s: run again once it has finished"), \
                _lock.held(str(tmp_path), timeout=0.3):
            pass
        assert time.monotonic() - start < 2
    finally:
        proc.kill()
        proc.wait()


def test_reentrant_within_a_process(tmp_path: Path) -> None:
    with _lock.held(str(tmp_path), timeout=0.5), _lock.held(str(tmp_path), timeout=0.5):
        pass
    with _lock.held(str(tmp_path), timeout=0.5):  # released once the outer block ended
        pass


def test_run_lock_skips_dry_runs_and_unwritable_directories(tmp_path: Path) -> None:
    with _lock.run_lock(str(tmp_path / "missing")):
        pass
    with _lock.run_lock(str(tmp_path), enabled=False):
        pass
    assert not (tmp_path / _lock.LOCK_NAME).exists()
    with _lock.run_lock(str(tmp_path), timeout=1):
        assert (tmp_path / _lock.LOCK_NAME).exists()


def test_the_lock_file_is_a_dotfile_readable_by_the_group(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with _lock.held(str(tmp_path)):
            pass
    finally:
        os.umask(old)
    path = tmp_path / _lock.LOCK_NAME
    assert path.name.startswith(".") and (path.stat().st_mode & 0o777) == 0o640


def test_another_thread_waits_like_another_process(tmp_path: Path) -> None:
    """Three deploys in threads of one process: each holds the lock alone, in turn."""
    inside: list[int] = []
    overlaps: list[int] = []

    def work() -> None:
        with _lock.held(str(tmp_path), timeout=10):
            inside.append(1)
            if len(inside) > 1:
                overlaps.append(len(inside))
            time.sleep(0.1)
            inside.pop()

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert overlaps == [] and not _lock._owners


def test_another_thread_gives_up_after_the_timeout(tmp_path: Path) -> None:
    errors: list[str] = []

    def work() -> None:
        try:
            with _lock.held(str(tmp_path), timeout=0.2):
                pass
        except FileError as exc:
            errors.append(str(exc))

    with _lock.held(str(tmp_path)):
        thread = threading.Thread(target=work)
        thread.start()
        thread.join(timeout=5)
    assert len(errors) == 1 and "gave up after 0.2 s" in errors[0]
