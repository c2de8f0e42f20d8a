# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The directory's index of bundle facts: used only while a file is unchanged, never trusted beyond that."""

from __future__ import annotations

import json
import os
import typing as t
from pathlib import Path

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _index
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import FileError


class Counting:
    """A compute function that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, data: bytes) -> dict[str, t.Any]:
        self.calls += 1
        return {"length": len(data)}


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def test_a_saved_index_answers_for_unchanged_files(tmp_path: Path) -> None:
    (tmp_path / "a.pem").write_bytes(b"aaa")
    compute = Counting()
    first = _index.BundleIndex(str(tmp_path))
    assert first.get(str(tmp_path / "a.pem"), "k", compute) == (True, {"length": 3})
    assert first.save() and not first.save()  # written once; nothing new the second time
    index_file = tmp_path / _index.INDEX_NAME
    assert (index_file.stat().st_mode & 0o777) == _index.MODE
    second = _index.BundleIndex(str(tmp_path))
    assert second.get(str(tmp_path / "a.pem"), "k", compute) == (True, {"length": 3})
    assert (compute.calls, second.hits) == (1, 1)
    assert not second.save()  # all hits: the index is not rewritten


CHANGES: list[t.Any] = [
    pytest.param(lambda p: _write(p, b"bbbb"), id="new-content"),
    pytest.param(lambda p: _write(p, b"bbb"), id="same-size-rewritten"),
    pytest.param(lambda p: os.chmod(p, 0o600), id="chmod"),
    pytest.param(lambda p: (p.with_name("x").write_bytes(b"ccc"), os.rename(p.with_name("x"), p)), id="renamed-over"),
    pytest.param(lambda p: os.utime(p, ns=(1, 1)), id="mtime-set-back"),
]


@pytest.mark.parametrize("change", CHANGES)
def test_any_change_to_the_file_computes_again(tmp_path: Path, change: t.Callable[[Path], t.Any]) -> None:
    path = tmp_path / "a.pem"
    path.write_bytes(b"aaa")
    compute = Counting()
    index = _index.BundleIndex(str(tmp_path))
    index.get(str(path), "k", compute)
    index.save()
    change(path)
    again = _index.BundleIndex(str(tmp_path))
    assert again.get(str(path), "k", compute) == (True, {"length": len(path.read_bytes())})
    assert (compute.calls, again.hits) == (2, 0)


DAMAGED: list[t.Any] = [
    pytest.param(b"", id="empty"),
    pytest.param(b"{not json", id="not-json"),
    pytest.param(b"[]", id="a-list"),
    pytest.param(json.dumps({"format": 99, "files": {}}).encode(), id="other-format"),
    pytest.param(json.dumps({"format": 1, "files": []}).encode(), id="files-not-a-mapping"),
    pytest.param(json.dumps({"format": 1, "files": {"a.pem": "x"}}).encode(), id="entry-not-a-mapping"),
    pytest.param(json.dumps({"format": 1, "files": {"a.pem": {"id": [1, 2], "k": {"length": 99}}}}).encode(),
                 id="foreign-identity"),
]


@pytest.mark.parametrize("content", DAMAGED)
def test_a_damaged_index_is_an_empty_one(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "a.pem").write_bytes(b"aaa")
    (tmp_path / _index.INDEX_NAME).write_bytes(content)
    compute = Counting()
    index = _index.BundleIndex(str(tmp_path))
    assert index.get(str(tmp_path / "a.pem"), "k", compute) == (True, {"length": 3})
    assert compute.calls == 1 and index.save()
    assert json.loads((tmp_path / _index.INDEX_NAME).read_text())["files"]["a.pem"]["k"] == {"length": 3}


def test_kinds_share_an_entry_and_missing_files_are_dropped(tmp_path: Path) -> None:
    for name in ("a.pem", "b.pem"):
        (tmp_path / name).write_bytes(b"xx")
    index = _index.BundleIndex(str(tmp_path))
    index.get(str(tmp_path / "a.pem"), "one", Counting())
    index.get(str(tmp_path / "a.pem"), "two", Counting())
    index.get(str(tmp_path / "b.pem"), "one", Counting())
    (tmp_path / "b.pem").unlink()
    index.save()
    files = json.loads((tmp_path / _index.INDEX_NAME).read_text())["files"]
    assert sorted(files) == ["a.pem"] and sorted(files["a.pem"]) == ["id", "one", "two"]


def test_no_file_no_facts_and_none_is_not_kept(tmp_path: Path) -> None:
    index = _index.BundleIndex(str(tmp_path))
    assert index.get(str(tmp_path / "none.pem"), "k", Counting()) == (False, None)
    (tmp_path / "a.pem").write_bytes(b"aaa")
    assert index.get(str(tmp_path / "a.pem"), "k", lambda data: None) == (True, None)
    assert not index.save()


def test_disabled_reads_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "a.pem").write_bytes(b"aaa")
    _index.BundleIndex(str(tmp_path)).get(str(tmp_path / "a.pem"), "k", Counting())
    compute = Counting()
    index = _index.BundleIndex(str(tmp_path), enabled=False)
    index.get(str(tmp_path / "a.pem"), "k", compute)
    index.put(str(tmp_path / "a.pem"), "k", {"length": 1})
    assert compute.calls == 1 and not index.save() and not (tmp_path / _index.INDEX_NAME).exists()


def test_put_keeps_facts_of_a_file_just_written(tmp_path: Path) -> None:
    path = tmp_path / "a.pem"
    path.write_bytes(b"aaa")
    index = _index.BundleIndex(str(tmp_path))
    index.put(str(path), "k", {"length": 3})
    index.put(str(tmp_path / "gone.pem"), "k", {"length": 0})  # not there: nothing kept
    index.save()
    compute = Counting()
    assert _index.BundleIndex(str(tmp_path)).get(str(path), "k", compute) == (True, {"length": 3})
    assert compute.calls == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes whatever the modes say")
def test_an_unwritable_directory_is_no_error(tmp_path: Path) -> None:  # pragma: no cover - CI runs as root
    (tmp_path / "a.pem").write_bytes(b"aaa")
    index = _index.BundleIndex(str(tmp_path))
    index.get(str(tmp_path / "a.pem"), "k", Counting())
    os.chmod(tmp_path, 0o500)
    try:
        assert not index.save()
    finally:
        os.chmod(tmp_path, 0o700)


def test_an_unwritable_index_path_is_no_error(tmp_path: Path) -> None:
    (tmp_path / "a.pem").write_bytes(b"aaa")
    (tmp_path / _index.INDEX_NAME).mkdir()  # a directory where the index goes: the rename fails
    index = _index.BundleIndex(str(tmp_path))
    index.get(str(tmp_path / "a.pem"), "k", Counting())
    assert not index.save()


def test_an_unreadable_bundle_is_a_file_error(tmp_path: Path) -> None:
    (tmp_path / "a.pem").mkdir()  # exists, but reading it fails
    with pytest.raises(FileError, match="cannot read"):
        _index.BundleIndex(str(tmp_path)).get(str(tmp_path / "a.pem"), "k", Counting())
