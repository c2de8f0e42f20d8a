# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import datetime as dt
import json
import typing as t
from pathlib import Path

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import renewal
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import ConfigError, RuntimeApiConnectionError
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import info
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.module_args import INFO_FIELDS
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.transport import RuntimeApi
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._index import INDEX_NAME
from tests.unit.plugins.module_utils._haproxy import fake_haproxy
from tests.unit.plugins.module_utils._haproxy.fake_haproxy import FakeHaproxy, Store
from tests.unit.plugins.module_utils._haproxy.testcerts import bundle, serial_of

DIR = "/etc/haproxy/certs"


@pytest.fixture
def fake(tmp_path: Path) -> t.Iterator[FakeHaproxy]:
    with FakeHaproxy(tmp_path) as server:
        server.add(f"{DIR}/long.pem", bundle(["long.test", "www.long.test"], days=80))
        server.add(f"{DIR}/short.pem", bundle(["short.test"], days=10))
        server.add(f"{DIR}/unused.pem", bundle(["unused.test"], days=5), None)
        server.add(f"{DIR}/empty.pem", None, None)
        yield server


def test_everything(fake: FakeHaproxy) -> None:
    result = info.run({"socket": fake.socket, "timeout": 2}).result
    by_path = {c["path"]: c for c in result["certificates"]}
    assert sorted(by_path) == [f"{DIR}/{n}.pem" for n in ("empty", "long", "short", "unused")]
    long = by_path[f"{DIR}/long.pem"]
    assert long["status"] == "Used" and long["crt_lists"] == [DIR]
    assert long["domains"] == ["long.test", "www.long.test"]
    assert long["serial"] == serial_of(fake.state.stores[f"{DIR}/long.pem"].pem.encode())  # type: ignore[union-attr]
    assert 79 <= long["days_left"] <= 80
    assert long["chain"] == ["/C=XX/O=tlsops test/CN=Test Intermediate"]
    assert by_path[f"{DIR}/unused.pem"]["status"] == "Unused" and by_path[f"{DIR}/unused.pem"]["crt_lists"] == []
    assert by_path[f"{DIR}/empty.pem"]["status"] == "Empty" and by_path[f"{DIR}/empty.pem"]["serial"] is None
    assert result["transaction"] is None and result["changed"] is False
    assert result["crt_lists"] == {DIR: [f"{DIR}/long.pem", f"{DIR}/short.pem"]}
    assert result["process"] == {"pid": 4711, "version": "2.6.12-1+deb12u1", "uptime_sec": 42}
    assert fake.connections == 1


@pytest.mark.parametrize(
    ("days", "paths"), [(30, ["short", "unused"]), (6, ["unused"]), (1, []), (365, ["long", "short", "unused"])]
)
def test_expiring_within_days(fake: FakeHaproxy, days: float, paths: list[str]) -> None:
    result = info.run({"socket": fake.socket, "expiring_within_days": days}).result
    assert [c["path"] for c in result["certificates"]] == [f"{DIR}/{p}.pem" for p in paths]


def test_named_and_absent(fake: FakeHaproxy) -> None:
    result = info.run({"socket": fake.socket, "paths": [f"{DIR}/short.pem", f"{DIR}/nope.pem"]}).result
    assert [(c["path"], c["status"]) for c in result["certificates"]] == [
        (f"{DIR}/short.pem", "Used"),
        (f"{DIR}/nope.pem", "Absent"),
    ]
    assert result["certificates"][1]["serial"] is None


def test_named_are_checked(fake: FakeHaproxy) -> None:
    with pytest.raises(ConfigError):
        info.run({"socket": fake.socket, "paths": [f"{DIR}/a.pem\nshow info"]})
    assert fake.state.log == []


def test_open_transaction_is_reported(fake: FakeHaproxy) -> None:
    fake.state.transaction = (f"{DIR}/short.pem", Store(bundle(["short.test"]).decode()))
    result = info.run({"socket": fake.socket}).result
    assert result["transaction"] == f"{DIR}/short.pem"
    assert [c["transaction"] for c in result["certificates"] if c["path"].endswith("short.pem")] == [True]


def test_operator_level_socket(fake: FakeHaproxy) -> None:
    # HAProxy 2.6 shows certificates from level operator, but crt-lists only at admin.
    fake.state.level = "operator"
    result = info.run({"socket": fake.socket}).result
    assert len(result["certificates"]) == 4
    assert result["crt_lists"] is None
    assert all(c["crt_lists"] is None for c in result["certificates"])


def test_locked_is_retried(fake: FakeHaproxy) -> None:
    fake.state.locked = 3
    result = info.run({"socket": fake.socket}).result
    assert len(result["certificates"]) == 4


def test_days_left_uses_now(fake: FakeHaproxy) -> None:
    with RuntimeApi(fake.socket) as api:
        later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=20)
        inventory = info.read_inventory(api, expiring_within_days=0, now=later)
    assert [c["path"] for c in inventory.certificates] == [f"{DIR}/short.pem", f"{DIR}/unused.pem"]


def test_missing_socket(tmp_path: Path) -> None:
    with pytest.raises(RuntimeApiConnectionError, match="does not exist"):
        info.run({"socket": str(tmp_path / "none.sock")})


def test_process_changes_with_the_worker(fake: FakeHaproxy) -> None:
    """A reload starts a new worker: its Pid is what a playbook compares before and after."""
    before = info.run({"socket": fake.socket}).result["process"]
    fake.state.pid, fake.state.uptime_sec = 4712, 0
    after = info.run({"socket": fake.socket}).result["process"]
    assert before["pid"] == 4711 and after == {"pid": 4712, "version": "2.6.12-1+deb12u1", "uptime_sec": 0}


def test_process_is_null_without_a_pid(fake: FakeHaproxy, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that does not answer ``show info`` with a Pid costs the process, not the inventory."""
    monkeypatch.setitem(fake_haproxy._HANDLERS, "show info", lambda state, args, payload: "Unknown command")
    result = info.run({"socket": fake.socket}).result
    assert result["process"] is None and len(result["certificates"]) == 4


def test_read_process_parses_the_real_reply_shape() -> None:
    class Api:
        def run(self, command: object) -> str:
            return "Name: HAProxy\nVersion: 3.0.11-1\nPid: 77\nUptime: 1d 0h00m00s\nUptime_sec: 86400\n"

    assert info.read_process(t.cast(RuntimeApi, Api())) == {"pid": 77, "version": "3.0.11-1", "uptime_sec": 86400}


# ------------------------------------------------------ bundle_facts and fields


def _files(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    certs = tmp_path / "certs"
    certs.mkdir()
    pems = {"a": bundle(["a.test"], days=40), "b": bundle(["b.test"], days=20)}
    for name, pem in pems.items():
        (certs / f"{name}.pem").write_bytes(pem)
    return certs, pems


def test_bundle_facts_from_the_files_then_from_their_index(tmp_path: Path) -> None:
    certs, pems = _files(tmp_path)
    computed: list[int] = []

    def facts_of(data: bytes) -> dict[str, t.Any]:
        computed.append(1)
        return renewal.facts_of(data)

    with FakeHaproxy(tmp_path) as server:
        for name, pem in pems.items():
            server.add(str(certs / f"{name}.pem"), pem)
        server.add(str(certs / "gone.pem"), bundle(["gone.test"], days=9))  # served, no file
        params = {"socket": server.socket, "bundle_facts": True}
        checked = info.run(params, check_mode=True, facts_source=lambda: (renewal.FACTS_KIND, facts_of)).result
        assert not (certs / INDEX_NAME).exists() and len(computed) == 2  # check mode keeps nothing
        first = info.run(params, facts_source=lambda: (renewal.FACTS_KIND, facts_of)).result
        again = info.run(params, facts_source=lambda: (renewal.FACTS_KIND, facts_of)).result
    assert len(computed) == 4, "the second read takes every file's facts from the index"
    by_path = {c["path"]: c["bundle_facts"] for c in first["certificates"]}
    for name, pem in pems.items():
        assert json.loads(by_path[str(certs / f"{name}.pem")]) == json.loads(json.dumps(renewal.facts_of(pem)))
    assert by_path[str(certs / "gone.pem")] is None
    assert first["certificates"] == again["certificates"] == checked["certificates"]
    assert b"PRIVATE" not in (certs / INDEX_NAME).read_bytes()


def test_bundle_facts_without_the_renewal_code_are_null(tmp_path: Path) -> None:
    certs, pems = _files(tmp_path)
    with FakeHaproxy(tmp_path) as server:
        server.add(str(certs / "a.pem"), pems["a"])
        result = info.run({"socket": server.socket, "bundle_facts": True}).result  # no facts_source
    assert [c["bundle_facts"] for c in result["certificates"]] == [None]


def test_fields_keep_only_the_keys_asked(fake: FakeHaproxy) -> None:
    result = info.run({"socket": fake.socket, "fields": ["serial", "path", "bundle_facts"]}).result
    assert {tuple(c) for c in result["certificates"]} == {("path", "serial")}  # no bundle_facts unless asked
    assert result["sockets"][0]["certificates"] == result["certificates"]
    full = info.run({"socket": fake.socket, "fields": []}).result
    assert set(full["certificates"][0]) == set(INFO_FIELDS) - {"bundle_facts"}


def test_process_only_reads_no_certificate(fake: FakeHaproxy) -> None:
    result = info.run({"socket": fake.socket, "process_only": True}).result
    assert result["process"] == {"pid": 4711, "version": "2.6.12-1+deb12u1", "uptime_sec": 42}
    assert result["certificates"] == [] and result["crt_lists"] == {} and result["transaction"] is None
    assert [line for line in fake.state.log if line.startswith("show ssl")] == []
