# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""haproxy_runtime_cert_info through its real main(), against the fake stats socket."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.modules import haproxy_runtime_cert_info
from tests.unit.conftest import ModuleMain
from tests.unit.plugins.module_utils._haproxy.fake_haproxy import FakeHaproxy
from tests.unit.plugins.module_utils._haproxy.testcerts import bundle


@pytest.fixture
def fake(tmp_path: Path) -> t.Iterator[FakeHaproxy]:
    with FakeHaproxy(tmp_path) as server:
        server.add("/etc/haproxy/certs/a.pem", bundle(["a.test"], days=20))
        server.add("/etc/haproxy/certs/b.pem", bundle(["b.test"], days=60))
        yield server


@pytest.mark.parametrize("check_mode", [False, True])
def test_lists_and_filters(module_main: ModuleMain, fake: FakeHaproxy, check_mode: bool) -> None:
    result = module_main(haproxy_runtime_cert_info, socket=fake.socket, _ansible_check_mode=check_mode)
    assert [c["path"] for c in result["certificates"]] == ["/etc/haproxy/certs/a.pem", "/etc/haproxy/certs/b.pem"]
    assert result["changed"] is False
    result = module_main(haproxy_runtime_cert_info, socket=fake.socket, expiring_within_days=30)
    assert [c["path"] for c in result["certificates"]] == ["/etc/haproxy/certs/a.pem"]


def test_names_alias(module_main: ModuleMain, fake: FakeHaproxy) -> None:
    result = module_main(haproxy_runtime_cert_info, socket=fake.socket, names=["/etc/haproxy/certs/b.pem"])
    assert [c["domains"] for c in result["certificates"]] == [["b.test"]]


def test_missing_socket_fails_clearly(module_main: ModuleMain, tmp_path: Path) -> None:
    result = module_main(haproxy_runtime_cert_info, socket=str(tmp_path / "x.sock"))
    assert result["failed"] and "does not exist" in result["msg"] and result["socket"] == str(tmp_path / "x.sock")
