# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""haproxy_config's decision as a table, and its runs on a temporary directory.

The check command is a small shell script standing in for ``haproxy -c``: it fails when
the new configuration holds the word ``broken``, and records that it saw the maps."""

from __future__ import annotations

import os
import typing as t
from pathlib import Path

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import ConfigError, FileError
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import config
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.config import Current, Want

D = Want("/d", 0o755)
F = Want("/f", 0o644, content=b"new\n")
KEEP = Want("/f", 0o644, content=b"new\n", force=False)


@pytest.mark.parametrize(("want", "current", "action"), [
    (D, Current(None), config.CREATED),
    (D, Current("directory", 0o755), config.UNCHANGED),
    (D, Current("directory", 0o700), config.ATTRIBUTES),
    (Want("/d", 0o2770), Current("directory", 0o770), config.ATTRIBUTES),
    (F, Current(None), config.CREATED),
    (F, Current("file", 0o644, content=b"new\n"), config.UNCHANGED),
    (F, Current("file", 0o644, content=b"old\n"), config.UPDATED),
    (F, Current("file", 0o600, content=b"new\n"), config.ATTRIBUTES),
    (F, Current("file", 0o600, content=b"old\n"), config.UPDATED),  # the write sets the mode too
    (KEEP, Current(None), config.CREATED),
    (KEEP, Current("file", 0o644, content=b"old\n"), config.KEPT),
    (KEEP, Current("file", 0o600, content=b"new\n"), config.KEPT),
    (KEEP, Current("file", 0o644, content=b"new\n"), config.UNCHANGED),
])
def test_decide(want: Want, current: Current, action: str) -> None:
    assert config.decide(want, current) == action


@pytest.mark.parametrize(("want", "current"), [(D, Current("file", 0o644)), (F, Current("directory", 0o755)),
                                               (F, Current("other", 0o644))])
def test_a_path_of_the_wrong_kind_is_left_alone(want: Want, current: Current) -> None:
    with pytest.raises(FileError, match="is not a"):
        config.decide(want, current)


CHECK = """#!/bin/sh
# stands in for haproxy -c -f: refuses "broken", needs the hosts map
grep -q broken "$1" && { echo "[ALERT] parsing [$1:3] : broken"; exit 1; }
test -f "$(dirname "$0")/etc/maps/hosts.map" || { echo "no map"; exit 2; }
exit 0
"""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    check = tmp_path / "check"
    check.write_text(CHECK)
    check.chmod(0o755)
    return tmp_path


def params(tree: Path, cfg: str = "global\n", hosts: str = "a.example web\n", **extra: t.Any) -> dict[str, t.Any]:
    etc = tree / "etc"
    return {
        "directories": [{"path": str(etc / "certs"), "mode": "2770"}, {"path": str(etc / "maps"), "mode": "0755"}],
        "files": [{"path": str(etc / "maps" / "hosts.map"), "content": hosts, "mode": "0644"},
                  {"path": str(etc / "maps" / "acme-thumbprint.map"), "content": "thumbprint t\n", "force": False}],
        "config": {"path": str(etc / "haproxy.cfg"), "content": cfg, "mode": "0640", "backup": extra.pop("backup", False)},
        "validate": f"{tree / 'check'} %s",
        **extra,
    }


def actions(result: dict[str, t.Any]) -> list[str]:
    return [e["action"] for e in result["directories"] + result["files"] + [result["config"]]]


def test_first_run_then_nothing_to_do(tree: Path) -> None:
    first = config.run(params(tree))
    assert first.failure is None and first.changed
    assert actions(first.result) == ["created"] * 5
    etc = tree / "etc"
    assert (etc / "haproxy.cfg").read_text() == "global\n"
    assert oct((etc / "certs").stat().st_mode & 0o7777) == "0o2770"
    assert oct((etc / "haproxy.cfg").stat().st_mode & 0o7777) == "0o640"
    again = config.run(params(tree))
    assert not again.changed and actions(again.result) == ["unchanged"] * 5 and again.result["diff"] == []
    assert sorted(p.name for p in etc.iterdir()) == ["certs", "haproxy.cfg", "maps"]  # no dotfile left


def test_check_mode_reports_and_writes_nothing(tree: Path) -> None:
    result = config.run(params(tree), check_mode=True)
    assert result.changed and actions(result.result) == ["created"] * 5
    assert not (tree / "etc").exists()
    assert [d["after_header"] for d in result.result["diff"]][-1] == str(tree / "etc" / "haproxy.cfg")


def test_a_configuration_that_fails_its_check_is_never_in_place(tree: Path) -> None:
    config.run(params(tree))
    result = config.run(params(tree, cfg="global\n  broken\n", hosts="b.example web\n"))
    assert result.failure is not None and "fails its check" in result.failure and "broken" in result.failure
    assert "<new haproxy.cfg>" in result.failure  # the temporary path is not shown
    assert result.result["config"]["action"] == "failed" and result.result["rc"] == 1
    assert result.changed  # the hosts map was written before the check
    etc = tree / "etc"
    assert (etc / "haproxy.cfg").read_text() == "global\n"
    assert (etc / "maps" / "hosts.map").read_text() == "b.example web\n"
    assert not [p for p in etc.iterdir() if p.name.startswith(".")]


def test_the_check_sees_the_maps_written_before_it(tree: Path) -> None:
    result = config.run(params(tree, validate=f"{tree / 'check'} %s"))
    assert result.failure is None  # the script exits 2 without the hosts map


def test_force_false_keeps_a_file_that_exists(tree: Path) -> None:
    config.run(params(tree))
    mapfile = tree / "etc" / "maps" / "acme-thumbprint.map"
    mapfile.write_text("# owned by another module\nthumbprint other\n")
    result = config.run(params(tree))
    assert not result.changed and result.result["files"][1]["action"] == "kept"
    assert "other" in mapfile.read_text()


def test_backup_of_the_old_configuration(tree: Path) -> None:
    config.run(params(tree))
    result = config.run(params(tree, cfg="global\n  maxconn 10\n", backup=True))
    backup = Path(result.result["config"]["backup_file"])
    assert backup.read_text() == "global\n" and backup.name.startswith("haproxy.cfg.") and backup.name.endswith("~")
    assert result.result["diff"][-1]["before"] == "global\n"


def test_attributes_only(tree: Path) -> None:
    config.run(params(tree))
    os.chmod(tree / "etc" / "maps", 0o700)
    result = config.run(params(tree))
    assert actions(result.result) == ["unchanged", "attributes", "unchanged", "unchanged", "unchanged"]
    assert oct((tree / "etc" / "maps").stat().st_mode & 0o7777) == "0o755"


def test_no_check_when_validate_is_empty(tree: Path) -> None:
    result = config.run(params(tree, cfg="broken\n", validate=""))
    assert result.failure is None and (tree / "etc" / "haproxy.cfg").read_text() == "broken\n"


@pytest.mark.parametrize(("change", "message"), [
    ({"validate": "haproxy -c -f"}, "validate must name the new file as %s"),
    ({"config": {"path": "etc/haproxy.cfg", "content": ""}}, "path must be an absolute path"),
    ({"directories": [{"path": "/x", "mode": "rwx"}]}, "invalid mode"),
    ({"directories": [{"path": "/x", "owner": "no-such-user-here"}]}, "no such user"),
    ({"files": [{"path": "/x", "content": ""}, {"path": "/x/", "content": ""}]}, "given more than once: /x"),
])
def test_bad_input_fails_before_anything_is_written(tree: Path, change: dict[str, t.Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config.run({**params(tree), **change})
    assert not (tree / "etc").exists()


def test_a_missing_check_command_fails_clearly(tree: Path) -> None:
    result = config.run(params(tree, validate=f"{tree / 'none'} -c -f %s"))
    assert result.failure is not None and "cannot run the check" in result.failure
    assert not (tree / "etc" / "haproxy.cfg").exists()
