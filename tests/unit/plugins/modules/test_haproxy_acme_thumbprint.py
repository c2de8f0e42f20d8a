# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""haproxy_acme_thumbprint through its real main(), against the fake stats socket with maps."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import maps
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.module_args import cert_argument_spec
from ansible_collections.tlsops.haproxy_acme.plugins.modules import haproxy_acme_thumbprint
from tests.unit.conftest import ModuleMain
from tests.unit.plugins.module_utils._haproxy.test_haproxy_maps import NEW, OLD, FakeMapHaproxy


@pytest.fixture
def mapfile(tmp_path: Path) -> Path:
    path = tmp_path / "acme-thumbprint.map"
    path.write_text(f"thumbprint {OLD}\n")
    return path


@pytest.fixture
def fake(tmp_path: Path, mapfile: Path) -> t.Iterator[FakeMapHaproxy]:
    with FakeMapHaproxy(tmp_path, {str(mapfile): {"thumbprint": OLD}}) as server:
        yield server


def test_check_diff_change_and_idempotence(module_main: ModuleMain, fake: FakeMapHaproxy,
                                           mapfile: Path) -> None:
    args = {"thumbprint": NEW, "path": str(mapfile), "socket": fake.socket}
    check = module_main(haproxy_acme_thumbprint, **args, _ansible_check_mode=True, _ansible_diff=True)
    assert check["changed"] and check["diff"] == {
        "before": f"thumbprint {OLD}\n", "after": f"thumbprint {NEW}\n",
        "before_header": f"{mapfile} (HAProxy and file)", "after_header": f"{mapfile} (HAProxy and file)"}
    assert mapfile.read_text() == f"thumbprint {OLD}\n" and fake.maps[str(mapfile)][0][2] == OLD

    done = module_main(haproxy_acme_thumbprint, **args)
    assert done["changed"] and "diff" not in done and done["previous_thumbprint"] == OLD
    assert done["sockets"][0]["action"] == "updated" and fake.maps[str(mapfile)][0][2] == NEW
    assert mapfile.read_text() == f"thumbprint {NEW}\n"

    for check_mode in (True, False):
        again = module_main(haproxy_acme_thumbprint, **args, _ansible_check_mode=check_mode)
        assert not again["changed"] and again["sockets"][0]["action"] == "unchanged"


def test_a_failure_is_reported_with_the_socket(
        module_main: ModuleMain, fake: FakeMapHaproxy, mapfile: Path) -> None:
    fake.refuse = "Permission denied\n"
    result = module_main(haproxy_acme_thumbprint, thumbprint=NEW, path=str(mapfile), socket=fake.socket)
    assert result["failed"] and result["msg"].endswith("HAProxy answered: Permission denied")
    assert result["sockets"][0]["action"] == "failed"


def test_bad_thumbprint(module_main: ModuleMain, fake: FakeMapHaproxy, mapfile: Path) -> None:
    result = module_main(haproxy_acme_thumbprint, thumbprint="x", path=str(mapfile), socket=fake.socket)
    assert result["failed"] and result["msg"].startswith("thumbprint must be an ACME account key thumbprint")


def test_socket_has_the_type_of_the_other_runtime_modules() -> None:
    """One module_defaults value for the haproxy action group suits every module in it."""
    assert maps.thumbprint_argument_spec()["socket"] == cert_argument_spec()["socket"]
