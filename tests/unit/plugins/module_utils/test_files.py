# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of _files (the atomic write, modes, removal) and _time."""

from __future__ import annotations

import datetime as dt
import os
import stat
import typing as t
from pathlib import Path

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _files, _time
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import ConfigError, FileError


def test_atomic_write_modes_and_noop(tmp_path: Path) -> None:
    path = str(tmp_path / "x.pem")
    assert _files.atomic_write(path, b"one", mode=0o640) is True
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert _files.atomic_write(path, b"one", mode=0o640) is False
    assert _files.atomic_write(path, b"one", mode=0o600) is True
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert _files.atomic_write(path, b"two", mode=0o600) is True
    assert Path(path).read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.pem"]


def test_atomic_write_failure_keeps_old_file(tmp_path: Path) -> None:
    path = tmp_path / "x.pem"
    path.write_bytes(b"old")
    with pytest.raises(ConfigError, match="no such user"):
        _files.atomic_write(str(path), b"new", owner="no-such-user-here")
    with pytest.raises(FileError, match="cannot write"):
        _files.atomic_write(str(tmp_path / "missing" / "x.pem"), b"new")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.pem"]


def test_read_optional_and_remove(tmp_path: Path) -> None:
    path = tmp_path / "x"
    assert _files.read_optional(str(path)) is None
    assert _files.remove_file(str(path)) is False
    path.write_bytes(b"1")
    assert _files.read_optional(str(path)) == b"1"
    assert _files.remove_file(str(path)) is True


@pytest.mark.parametrize(("mode", "expected"), [("0640", 0o640), (0o600, 0o600), ("600", 0o600)])
def test_parse_mode(mode: t.Any, expected: int) -> None:
    assert _files.parse_mode(mode) == expected


@pytest.mark.parametrize("mode", ["rw-r-----", "0999", True, "", 0o17777])
def test_parse_mode_refuses(mode: t.Any) -> None:
    with pytest.raises(ConfigError):
        _files.parse_mode(mode)


def test_file_matches_is_what_atomic_write_would_leave_alone(tmp_path: Path) -> None:
    path = str(tmp_path / "x.pem")
    assert not _files.file_matches(path, b"one")
    _files.atomic_write(path, b"one", mode=0o600)
    assert _files.file_matches(path, b"one", mode=0o600)
    assert not _files.file_matches(path, b"one", mode=0o640)
    assert not _files.file_matches(path, b"two", mode=0o600)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (dt.datetime(2026, 6, 1, 12, 30, 5, 999), "2026-06-01T12:30:05Z"),  # naive: taken as UTC
        (dt.datetime(2026, 6, 1, 14, 30, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))), "2026-06-01T12:30:05Z"),
    ],
)
def test_isoformat_in_utc(value: dt.datetime, text: str) -> None:
    assert _time.isoformat(value) == text
    assert _time.as_utc(value).utcoffset() == dt.timedelta(0)


def test_utcnow_is_aware() -> None:
    assert _time.utcnow().tzinfo is dt.timezone.utc


def test_a_batch_syncs_its_directory_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    monkeypatch.setattr(_files, "_fsync_dir", synced.append)
    _files.atomic_write(str(tmp_path / "one.pem"), b"1")
    assert synced == [str(tmp_path)]
    for name in ("a", "b", "c"):
        assert _files.atomic_write(str(tmp_path / f"{name}.pem"), name.encode(), sync_dir=False)
    assert synced == [str(tmp_path)] and (tmp_path / "c.pem").read_bytes() == b"c"
    _files.sync_directories([str(tmp_path), str(tmp_path / "sub"), str(tmp_path)])
    assert synced == [str(tmp_path), str(tmp_path), str(tmp_path / "sub")]
