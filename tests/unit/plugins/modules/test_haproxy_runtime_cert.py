# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""haproxy_runtime_cert through its real main(), against the fake stats socket."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.modules import haproxy_runtime_cert
from tests.unit.conftest import ModuleMain
from tests.unit.plugins.module_utils._haproxy.fake_haproxy import FakeHaproxy
from tests.unit.plugins.module_utils._haproxy.testcerts import bundle, mismatched_bundle, serial_of


@pytest.fixture
def certdir(tmp_path: Path) -> Path:
    path = tmp_path / "certs"
    path.mkdir()
    return path


@pytest.fixture
def fake(tmp_path: Path, certdir: Path) -> t.Iterator[FakeHaproxy]:
    with FakeHaproxy(tmp_path, crt_dir=str(certdir)) as server:
        yield server


def test_four_runs_with_diff(module_main: ModuleMain, fake: FakeHaproxy, certdir: Path) -> None:
    pem = bundle(["a.test"]).decode()
    args = {"socket": fake.socket, "path": str(certdir / "a.pem"), "pem_content": pem, "_ansible_diff": True}
    expected = [
        (True, True, "created"),
        (False, True, "created"),
        (True, False, "unchanged"),
        (False, False, "unchanged"),
    ]
    for check_mode, changed, action in expected:
        result = module_main(haproxy_runtime_cert, _ansible_check_mode=check_mode, **args)
        assert (result["changed"], result["action"]) == (changed, action), result
        assert result["serial"] == serial_of(pem.encode())
        assert result["certificates"][0]["path"] == str(certdir / "a.pem")
        assert "diff" in result and "PRIVATE" not in json.dumps(result)
    assert fake.state.stores[str(certdir / "a.pem")].pem is not None


def test_no_diff_unless_asked(module_main: ModuleMain, fake: FakeHaproxy, certdir: Path) -> None:
    result = module_main(
        haproxy_runtime_cert,
        socket=fake.socket,
        path=str(certdir / "a.pem"),
        pem_content=bundle(["a.test"]).decode(),
    )
    assert "diff" not in result


def test_failure_is_fail_json_with_results(
    module_main: ModuleMain, fake: FakeHaproxy, certdir: Path
) -> None:
    result = module_main(
        haproxy_runtime_cert,
        socket=fake.socket,
        path=str(certdir / "a.pem"),
        pem_content=mismatched_bundle(["a.test"]).decode(),
    )
    assert result["failed"] and "does not match" in result["msg"]
    assert result["certificates"][0]["action"] == "failed"
    assert fake.state.log == []


def test_options_wrong_as_a_whole(module_main: ModuleMain, fake: FakeHaproxy, certdir: Path) -> None:
    result = module_main(
        haproxy_runtime_cert, socket=fake.socket, path=str(certdir / "a.pem"), mode="rw", state="absent"
    )
    assert result["failed"] and "invalid mode" in result["msg"]


def test_batch(module_main: ModuleMain, fake: FakeHaproxy, certdir: Path) -> None:
    items = [{"path": str(certdir / f"{n}.pem"), "pem_content": bundle([f"{n}.test"]).decode()} for n in "abc"]
    result = module_main(haproxy_runtime_cert, socket=[fake.socket], certificates=items, group="root")
    assert [c["action"] for c in result["certificates"]] == ["created"] * 3
    assert "action" not in result and result["changed"]


def test_pem_content_is_no_log() -> None:
    spec = haproxy_runtime_cert.cert_argument_spec()
    assert spec["pem_content"]["no_log"] is True
    assert spec["certificates"]["options"]["pem_content"]["no_log"] is True


def test_mutually_exclusive(module_main: ModuleMain, fake: FakeHaproxy, certdir: Path) -> None:
    result = module_main(
        haproxy_runtime_cert,
        socket=fake.socket,
        path=str(certdir / "a.pem"),
        certificates=[{"path": str(certdir / "b.pem")}],
    )
    assert result["failed"] and "mutually exclusive" in result["msg"]
