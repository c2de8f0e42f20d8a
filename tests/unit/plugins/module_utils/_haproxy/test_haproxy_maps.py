# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The thumbprint map in HAProxy's memory and on disk, against a fake stats socket that
keeps maps as HAProxy 2.6.12 and 3.0.11 do (replies recorded from both)."""

from __future__ import annotations

import itertools
import os
import stat
import typing as t
from pathlib import Path

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import (
    ConfigError,
    FileError,
    RuntimeApiConnectionError,
    RuntimeApiError,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import maps
from tests.unit.plugins.module_utils._haproxy.fake_haproxy import FakeHaproxy

OLD = "A" * 43
NEW = "lCufto4sDRTHdmWL0EugFywGV54hBCuTTXvwifi65R4"
_REFS = itertools.count(0x55D0EE622F0, 0x40)


class FakeMapHaproxy(FakeHaproxy):
    """FakeHaproxy with maps: ``maps`` is file name -> list of [ref, key, value] entries."""

    def __init__(self, directory: str | os.PathLike[str], maps_loaded: dict[str, dict[str, str]] | None = None,
                 **kwargs: t.Any) -> None:
        super().__init__(directory, **kwargs)
        self.maps: dict[str, list[list[str]]] = {
            path: [[hex(next(_REFS)), k, v] for k, v in entries.items()] for path, entries in (maps_loaded or {}).items()
        }
        self.refuse: str | None = None  # answer this to every set/add map

    def command(self, line: str, payload: str | None) -> str:  # noqa: PLR0911 - one reply per case
        words = line.split()
        if words[1:2] != ["map"]:
            return super().command(line, payload)
        verb, args = words[0], words[2:]
        if verb == "show" and not args:
            lines = ["# id (file) description"]
            for index, (path, entries) in enumerate(self.maps.items()):
                lines.append(f"{index} ({path}) pattern loaded from file '{path}' used by map at file"
                             f" '/etc/haproxy/haproxy.cfg' line 30. curr_ver=0 next_ver=0 entry_cnt={len(entries)}")
            return "\n".join(lines) + "\n"
        entries = self.maps.get(args[0]) if args else None
        if entries is None:
            return "Unknown map identifier. Please use #<id> or <file>.\n"
        if verb == "show":
            return "".join(f"{ref} {key} {value}\n" for ref, key, value in entries)
        if self.refuse is not None:
            return self.refuse
        if verb == "set":
            found = [e for e in entries if e[1] == args[1]]
            if not found:
                return "entry not found.\n"
            for entry in found:
                entry[2] = args[2]
            return ""
        if verb == "add":
            entries.append([hex(next(_REFS)), args[1], args[2]])
            return ""
        return "Unknown command"


@pytest.fixture
def mapfile(tmp_path: Path) -> Path:
    (tmp_path / "maps").mkdir()
    return tmp_path / "maps" / "acme-thumbprint.map"


@pytest.fixture
def fake(tmp_path: Path, mapfile: Path) -> t.Iterator[FakeMapHaproxy]:
    mapfile.write_text(f"thumbprint {OLD}\n")
    with FakeMapHaproxy(tmp_path, {str(mapfile): {"thumbprint": OLD}}) as server:
        yield server


def params(fake: FakeHaproxy | None, mapfile: Path, **extra: t.Any) -> dict[str, t.Any]:
    return {"thumbprint": NEW, "path": str(mapfile), "socket": [fake.socket] if fake else ["/nonexistent.sock"],
            "timeout": 5, **extra}


def sent(fake: FakeHaproxy) -> list[str]:
    return [line for line in fake.state.log if line != "prompt"]


def test_set_in_memory_and_on_disk_then_unchanged(fake: FakeMapHaproxy, mapfile: Path) -> None:
    outcome = maps.run(params(fake, mapfile))
    result, failure = outcome.result, outcome.failure
    assert failure is None and result["changed"] and result["file_changed"]
    assert result["previous_thumbprint"] == OLD and result["thumbprint"] == NEW
    assert result["sockets"] == [{"socket": fake.socket, "action": "updated", "previous": OLD, "reason": "new value"}]
    assert [e[1:] for e in fake.maps[str(mapfile)]] == [["thumbprint", NEW]]
    assert mapfile.read_text() == f"thumbprint {NEW}\n"
    assert stat.S_IMODE(mapfile.stat().st_mode) == 0o644
    assert f"set map {mapfile} thumbprint {NEW}" in sent(fake)
    assert result["diff"]["before"] == f"thumbprint {OLD}\n" and result["diff"]["after"] == f"thumbprint {NEW}\n"
    assert not [p for p in mapfile.parent.iterdir() if p.name.startswith(".")]  # the dotfile was renamed

    fake.state.log.clear()
    outcome = maps.run(params(fake, mapfile))
    again, failure = outcome.result, outcome.failure
    assert failure is None and not again["changed"] and not again["file_changed"]
    assert again["sockets"][0]["action"] == "unchanged"
    assert sent(fake) == ["show map", f"show map {mapfile}"]  # read only


def test_check_mode_reads_and_changes_nothing(fake: FakeMapHaproxy, mapfile: Path) -> None:
    outcome = maps.run(params(fake, mapfile), check_mode=True)
    result, failure = outcome.result, outcome.failure
    assert failure is None and result["changed"] and result["file_changed"]
    assert result["sockets"][0]["action"] == "updated"
    assert [e[1:] for e in fake.maps[str(mapfile)]] == [["thumbprint", OLD]]
    assert mapfile.read_text() == f"thumbprint {OLD}\n"
    assert not [line for line in sent(fake) if not line.startswith("show")]


def test_a_map_without_the_entry_gets_add_map(tmp_path: Path, mapfile: Path) -> None:
    with FakeMapHaproxy(tmp_path, {str(mapfile): {}}) as fake:
        outcome = maps.run(params(fake, mapfile))
        result, failure = outcome.result, outcome.failure
        assert failure is None and result["sockets"][0]["action"] == "added"
        assert result["previous_thumbprint"] is None and result["diff"]["before"] == ""
        assert [e[1:] for e in fake.maps[str(mapfile)]] == [["thumbprint", NEW]]
    assert mapfile.read_text() == maps.FILE_HEADER + f"thumbprint {NEW}\n"


def test_the_file_keeps_its_other_lines_and_loses_a_duplicate(fake: FakeMapHaproxy, mapfile: Path) -> None:
    mapfile.write_text(f"# mine\nother value with spaces\n  thumbprint {OLD}\nthumbprint {OLD}x\n")
    maps.run(params(fake, mapfile))
    assert mapfile.read_text() == f"# mine\nother value with spaces\nthumbprint {NEW}\n"


def test_several_sockets_one_failing_is_named(tmp_path: Path, mapfile: Path) -> None:
    mapfile.write_text(f"thumbprint {OLD}\n")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    loaded = {str(mapfile): {"thumbprint": OLD}}
    with FakeMapHaproxy(tmp_path / "a", loaded) as one, FakeMapHaproxy(tmp_path / "b", loaded) as two:
        two.refuse = "Permission denied\n"
        outcome = maps.run({**params(one, mapfile), "socket": [one.socket, two.socket]})
        result, failure = outcome.result, outcome.failure
        assert [s["action"] for s in result["sockets"]] == ["updated", "failed"]
        assert failure == (f"1 of 2 sockets failed; first: {two.socket}: 'set map {mapfile}' for {mapfile} on"
                           f" {two.socket}: HAProxy answered: Permission denied")
        assert [e[2] for e in one.maps[str(mapfile)]] == [NEW] and [e[2] for e in two.maps[str(mapfile)]] == [OLD]
    assert mapfile.read_text() == f"thumbprint {NEW}\n"  # a restart answers with the new one


def test_a_haproxy_without_the_map_fails_before_anything_is_written(tmp_path: Path, mapfile: Path) -> None:
    mapfile.write_text(f"thumbprint {OLD}\n")
    with FakeMapHaproxy(tmp_path, {}) as fake:
        with pytest.raises(RuntimeApiError) as info:
            maps.run(params(fake, mapfile))
        assert info.value.msg.startswith(f"HAProxy holds no map {mapfile}: its running configuration does not read it")
        assert info.value.msg.endswith("With require_runtime: false the file alone is written")
        assert mapfile.read_text() == f"thumbprint {OLD}\n"

        outcome = maps.run(params(fake, mapfile, require_runtime=False))
        result, failure = outcome.result, outcome.failure
        assert failure is None and result["changed"] and result["sockets"][0]["action"] == "not_loaded"
        assert mapfile.read_text() == f"thumbprint {NEW}\n" and fake.maps == {}


def test_no_haproxy_at_all(tmp_path: Path, mapfile: Path) -> None:
    with pytest.raises(RuntimeApiConnectionError, match="does not exist"):
        maps.run(params(None, mapfile))
    assert not mapfile.exists()
    outcome = maps.run(params(None, mapfile, require_runtime=False))
    result, failure = outcome.result, outcome.failure
    assert failure is None and result["changed"] and result["sockets"][0]["action"] == "unreachable"
    assert mapfile.read_text() == maps.FILE_HEADER + f"thumbprint {NEW}\n"
    again = maps.run(params(None, mapfile, require_runtime=False)).result
    assert not again["changed"] and again["previous_thumbprint"] == NEW


def test_memory_only(fake: FakeMapHaproxy, mapfile: Path) -> None:
    result = maps.run(params(fake, mapfile, write_file=False)).result
    assert result["changed"] and not result["file_changed"]
    assert mapfile.read_text() == f"thumbprint {OLD}\n"


def test_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileError, match=f"cannot write the map {tmp_path}/nowhere/x.map: {tmp_path}/nowhere does not exist"):
        maps.run(params(None, tmp_path / "nowhere" / "x.map", require_runtime=False))


@pytest.mark.parametrize(("extra", "match"), [
    ({"thumbprint": "short"}, "thumbprint must be an ACME account key thumbprint .*got 'short'"),
    ({"thumbprint": NEW[:-1] + "="}, "43 base64url characters"),
    ({"thumbprint": NEW + "; shutdown sessions"}, "43 base64url characters"),
    ({"path": "relative/acme.map"}, "must be an absolute file path"),
    ({"path": "/etc/haproxy/a,b.map"}, "inside the map\\(\\) converter"),
    ({"path": "/etc/haproxy/a b.map"}, "holds ' '"),
    ({"path": "/etc/haproxy/x.map;show"}, "holds ';'"),
    ({"key": "#thumbprint"}, "HAProxy reads as a comment line"),
    ({"key": "a\nb"}, "holds '\\\\n'"),
    ({"socket": ["/a.sock", "/a.sock"]}, "socket lists /a.sock twice"),
    ({"socket": [""]}, "socket lists an empty address"),
    ({"timeout": -1}, "timeout must be a positive number"),
    ({"mode": "rw"}, "invalid mode"),
])
def test_bad_input_is_refused_before_anything_is_sent(fake: FakeMapHaproxy, mapfile: Path,
                                                      extra: dict[str, t.Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        maps.run(params(fake, mapfile, **extra))
    assert sent(fake) == [] and mapfile.read_text() == f"thumbprint {OLD}\n"


def test_replies_of_26_and_30() -> None:
    listing = ("# id (file) description\n"
               "0 (/etc/haproxy/maps/hosts.map) pattern loaded from file '/etc/haproxy/maps/hosts.map' used by map at"
               " file '/etc/haproxy/haproxy.cfg' line 60. curr_ver=0 next_ver=0 entry_cnt=2\n"
               "1 (/etc/haproxy/maps/acme-thumbprint.map) pattern loaded from file"
               " '/etc/haproxy/maps/acme-thumbprint.map' used by map at file '/etc/haproxy/haproxy.cfg' line 45, by map"
               " at file '/etc/haproxy/haproxy.cfg' line 45. curr_ver=0 next_ver=0 entry_cnt=1\n")
    assert maps.parse_map_list(listing) == {"/etc/haproxy/maps/hosts.map": "0",
                                            "/etc/haproxy/maps/acme-thumbprint.map": "1"}
    assert maps.parse_map_entries(f"0x7efefda41280 thumbprint {NEW}\n0x7efefda412c0 k value with spaces\n") == [
        ("0x7efefda41280", "thumbprint", NEW), ("0x7efefda412c0", "k", "value with spaces")]
    assert maps.parse_map_entries("") == []
