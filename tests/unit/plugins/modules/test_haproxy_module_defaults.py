# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One ``socket`` value for the whole ``haproxy`` action group: the same value through both modules.

``module_defaults: group/tlsops.haproxy_acme.haproxy: {socket: ...}`` hands the same value to
haproxy_runtime_cert and haproxy_runtime_cert_info; both must take it and mean the same by it.
The playbook form runs in tests/integration/targets/haproxy_module_defaults.
"""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _defaults
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import info
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.module_args import (
    cert_argument_spec,
    info_argument_spec,
)
from ansible_collections.tlsops.haproxy_acme.plugins.modules import haproxy_runtime_cert, haproxy_runtime_cert_info
from tests.unit.conftest import ModuleMain
from tests.unit.plugins.module_utils._haproxy.fake_haproxy import FakeHaproxy
from tests.unit.plugins.module_utils._haproxy.testcerts import bundle

GROUP_DEFAULTS: list[t.Any] = [
    "/run/haproxy/admin.sock",
    ["/run/haproxy/admin.sock"],
    ["/run/haproxy/admin.sock", "127.0.0.1:9999"],
    ["unix@/run/haproxy/admin.sock", "ipv4@127.0.0.1:9999", "[::1]:9999"],
]


def validated(spec: dict[str, t.Any], params: dict[str, t.Any]) -> dict[str, t.Any]:
    result = ArgumentSpecValidator(spec).validate(params)
    assert not result.error_messages, result.error_messages
    return t.cast(dict[str, t.Any], result.validated_parameters)


@pytest.mark.parametrize("value", GROUP_DEFAULTS)
def test_same_value_same_meaning(value: t.Any) -> None:
    cert = validated(cert_argument_spec(), {"socket": value, "path": "/etc/haproxy/certs/a.pem", "state": "absent"})
    shown = validated(info_argument_spec(), {"socket": value})
    expected = [value] if isinstance(value, str) else value
    assert cert["socket"] == shown["socket"] == expected


def test_same_type_and_default() -> None:
    cert, shown = cert_argument_spec()["socket"], info_argument_spec()["socket"]
    assert cert == shown == {"type": "list", "elements": "str", "default": [_defaults.SOCKET]}


def test_both_modules_with_one_list(module_main: ModuleMain, tmp_path: Path) -> None:
    """Two HAProxy processes named once: the certificate goes to both, and info reads both."""
    certdir = tmp_path / "certs"
    certdir.mkdir()
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    with FakeHaproxy(tmp_path / "one", crt_dir=str(certdir)) as one, FakeHaproxy(
        tmp_path / "two", crt_dir=str(certdir)
    ) as two:
        two.state.pid = 4712
        defaults = {"socket": [one.socket, two.socket], "timeout": 2.0}
        path = str(certdir / "a.test.pem")
        pushed = module_main(haproxy_runtime_cert, **defaults, path=path, pem_content=bundle(["a.test"]).decode())
        assert not pushed.get("failed"), pushed
        assert [s["socket"] for s in pushed["sockets"]] == [one.socket, two.socket]
        shown = module_main(haproxy_runtime_cert_info, **defaults)
        assert not shown.get("failed"), shown
        assert [v["socket"] for v in shown["sockets"]] == [one.socket, two.socket]
        assert [v["process"]["pid"] for v in shown["sockets"]] == [4711, 4712]
        for view in shown["sockets"]:
            assert [c["serial"] for c in view["certificates"]] == [pushed["serial"]]
        # the top level is the first socket's, as it was with a single string
        assert shown["certificates"] == shown["sockets"][0]["certificates"]
        assert shown["process"] == shown["sockets"][0]["process"]


def test_info_takes_a_plain_string_too(tmp_path: Path) -> None:
    """The renewal job and older playbooks pass one path as a string."""
    with FakeHaproxy(tmp_path) as fake:
        result = info.run({"socket": fake.socket}).result
        assert [v["socket"] for v in result["sockets"]] == [fake.socket]


def test_info_fails_on_any_socket(module_main: ModuleMain, tmp_path: Path) -> None:
    with FakeHaproxy(tmp_path) as fake:
        missing = str(tmp_path / "gone.sock")
        result = module_main(haproxy_runtime_cert_info, socket=[fake.socket, missing])
        assert result["failed"] and f"stats socket {missing} does not exist" in result["msg"]
