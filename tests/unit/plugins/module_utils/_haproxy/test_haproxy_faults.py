# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Inputs checked before the disk is touched, and a deploy across a restart, against the fake stats socket.

The same faults against a real HAProxy: tests/integration/test_haproxy_faults.py.
"""

from __future__ import annotations

import os
import socket
import typing as t
from pathlib import Path

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import ConfigError
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import cert_run
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.transport import check_socket_path
from tests.unit.plugins.module_utils._haproxy.fake_haproxy import FakeHaproxy, State
from tests.unit.plugins.module_utils._haproxy.testcerts import bundle


def run(sockets: list[str], **params: t.Any) -> tuple[dict[str, t.Any], str | None, list[str]]:
    outcome = cert_run.run({"socket": sockets, "timeout": 2.0, "busy_timeout": 0.5, **params})
    return outcome.result, outcome.failure, outcome.warnings


def changes(fake: FakeHaproxy) -> list[str]:
    return [line for line in fake.state.log if not line.startswith("show")]


def items(certdir: Path, count: int) -> list[dict[str, t.Any]]:
    return [
        {"path": str(certdir / f"c{n}.test.pem"), "pem_content": bundle([f"c{n}.test"]).decode()} for n in range(count)
    ]


def on_nth(fake: FakeHaproxy, verb: str, nth: int, action: t.Callable[[State], None], before: bool = False) -> None:
    """Run ``action`` around the ``nth`` time HAProxy gets ``verb`` (hooks run once: re-armed until then)."""
    table = fake.state.hooks if before else fake.state.after
    seen = [0]

    def hook(state: State) -> None:
        seen[0] += 1
        if seen[0] == nth:
            action(state)
        else:
            table[verb] = hook

    table[verb] = hook


# ------------------------------------------------------- before the disk


@pytest.mark.parametrize("crt_list", ["/etc/haproxy/other.list", "/etc/haproxy/certs"])
def test_unknown_crt_list_nothing_written(fake: FakeHaproxy, certdir: Path, crt_list: str) -> None:
    path = certdir / "a.test.pem"
    result, failure, _ = run([fake.socket], path=str(path), pem_content=bundle(["a.test"]).decode(), crt_list=crt_list)
    assert failure is not None and f"HAProxy has no crt-list {crt_list}" in failure
    assert f"lists {certdir}" in failure and "nothing was written or sent" in failure
    assert not path.exists() and not result["file_changed"]
    assert changes(fake) == []


def test_crt_dir_with_trailing_slash_is_the_directory(fake: FakeHaproxy, certdir: Path) -> None:
    path = certdir / "a.test.pem"
    result, failure, _ = run([fake.socket], path=str(path), pem_content=bundle(["a.test"]).decode(),
                             crt_list=f"{certdir}/")
    assert failure is None, failure
    assert result["crt_list"] == str(certdir) and result["status"] == "Used"
    assert str(path) in fake.state.lists[str(certdir)]


def test_new_certificate_outside_every_loaded_directory(fake: FakeHaproxy, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = elsewhere / "a.test.pem"
    _result, failure, _ = run([fake.socket], path=str(path), pem_content=bundle(["a.test"]).decode())
    assert failure is not None and "is not in a directory HAProxy loads" in failure
    assert "no crt_list was given" in failure
    assert not path.exists() and changes(fake) == []


def test_existing_certificate_in_a_crt_list_file_needs_no_list(fake: FakeHaproxy, tmp_path: Path) -> None:
    """Served from a crt-list file elsewhere: an update needs no 'add', so no crt_list either."""
    path = str(tmp_path / "a.test.pem")
    fake.add(path, bundle(["a.test"]), crt_list="/etc/haproxy/crt.list")
    result, failure, _ = run([fake.socket], path=path, pem_content=bundle(["a.test"]).decode())
    assert failure is None, failure
    assert result["action"] == "updated"


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_socket_that_is_not_a_socket(certdir: Path, tmp_path: Path, kind: str) -> None:
    target = tmp_path / "admin.sock"
    if kind == "file":
        target.write_text("")
    else:
        target.mkdir()
    path = certdir / "a.test.pem"
    result, failure, _ = run([str(target)], path=str(path), pem_content=bundle(["a.test"]).decode())
    assert failure is not None
    assert f"{target} is not a socket (it is a {'regular file' if kind == 'file' else 'directory'})" in failure
    assert "connection refused" not in failure
    assert not path.exists() and not result["file_changed"]


def test_one_socket_not_a_socket_stops_the_others_too(fake: FakeHaproxy, certdir: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.sock"
    bogus.write_text("")
    path = certdir / "a.test.pem"
    result, failure, _ = run([fake.socket, str(bogus)], path=str(path), pem_content=bundle(["a.test"]).decode())
    assert failure is not None and "is not a socket" in failure
    assert not path.exists() and changes(fake) == []
    assert [s["action"] for s in result["sockets"]] == ["failed"]


def test_unparsable_address_nothing_written(certdir: Path) -> None:
    path = certdir / "a.test.pem"
    _result, failure, _ = run(["localhost:"], path=str(path), pem_content=bundle(["a.test"]).decode())
    assert failure is not None and "cannot read the Runtime API address" in failure
    assert not path.exists()


def test_socket_below_level_admin_nothing_written(fake: FakeHaproxy, certdir: Path) -> None:
    fake.state.level = "operator"
    path = certdir / "a.test.pem"
    _result, failure, _ = run([fake.socket], path=str(path), pem_content=bundle(["a.test"]).decode())
    assert failure is not None and "level admin" in failure
    assert not path.exists()


def test_check_socket_path(tmp_path: Path) -> None:
    check_socket_path(str(tmp_path / "missing.sock"))  # left to connect(): "does not exist"
    check_socket_path("127.0.0.1:9999")
    check_socket_path("abns@haproxy")
    live = tmp_path / "live.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(live))
        check_socket_path(str(live))
    (tmp_path / "plain").write_text("")
    with pytest.raises(ConfigError, match="is not a socket"):
        check_socket_path(f"unix@{tmp_path / 'plain'}")


def test_socket_lists(fake: FakeHaproxy, certdir: Path) -> None:
    with pytest.raises(ConfigError, match="twice"):
        run([fake.socket, fake.socket], path=str(certdir / "a.pem"), state="absent")
    with pytest.raises(ConfigError, match="empty address"):
        run([fake.socket, " "], path=str(certdir / "a.pem"), state="absent")


# ------------------------------------------------------------- restarts


def test_restart_mid_deploy_the_rest_goes_to_the_new_process(fake: FakeHaproxy, certdir: Path) -> None:
    """HAProxy restarted at the 5th commit of 10, down for three connection attempts."""

    def restart(state: State) -> None:
        fake.restart(str(certdir), refuse=3)
        state.hangup = True

    on_nth(fake, "commit ssl cert", 5, restart, before=True)
    old_pid = fake.state.pid
    result, failure, warnings = run([fake.socket], certificates=items(certdir, 10))
    assert failure is None, failure
    assert fake.state.pid == old_pid + 1
    assert any("was restarted or reloaded during the deploy" in w for w in warnings), warnings
    assert [c["status"] for c in result["certificates"]] == ["Used"] * 10
    for entry in result["certificates"]:
        assert fake.state.stores[entry["path"]].pem == Path(entry["path"]).read_text()
        assert entry["path"] in fake.state.lists[str(certdir)]
    assert fake.state.transaction is None
    # a rerun converges: nothing left to do
    again = [{"path": c["path"]} for c in result["certificates"]]  # the files at path themselves
    result, failure, _ = run([fake.socket], certificates=again)
    assert failure is None and [c["action"] for c in result["certificates"]] == ["unchanged"] * 10


def test_reload_seen_only_on_a_new_connection(fake: FakeHaproxy, certdir: Path) -> None:
    """The process changed without our connection noticing: found after the pass, all read again."""
    on_nth(fake, "commit ssl cert", 2, lambda state: fake.restart(str(certdir)))
    result, failure, warnings = run([fake.socket], certificates=items(certdir, 4))
    assert failure is None, failure
    assert any("read again" in w for w in warnings)
    assert [c["action"] for c in result["certificates"]] == ["created"] * 4
    assert all(p in fake.state.stores for p in (c["path"] for c in result["certificates"]))


def test_lost_and_not_back_fails_clearly(fake: FakeHaproxy, certdir: Path) -> None:
    """HAProxy gone for good at the 3rd certificate: all fail, even the two it had taken (nothing serves
    them now), each saying so and that its file is written."""

    def die(state: State) -> None:
        state.refuse = 10_000
        state.hangup = True

    on_nth(fake, "set ssl cert", 3, die, before=True)
    outcome = cert_run.run(
        {"socket": [fake.socket], "timeout": 0.5, "busy_timeout": 0.5, "certificates": items(certdir, 5)}
    )
    result, failure = outcome.result, outcome.failure
    assert failure is not None
    actions = [c["action"] for c in result["certificates"]]
    assert actions == ["failed"] * 5
    for entry in result["certificates"]:
        assert "was lost during the deploy (HAProxy restarted or stopped)" in entry["msg"]
        assert "did not come back within 0.5 s" in entry["msg"]
        assert f"{entry['path']} was written, so HAProxy loads it when it next starts" in entry["msg"]
    assert all(os.path.exists(c["path"]) for c in result["certificates"])


def test_lost_connection_same_process_cleans_up_and_goes_on(fake: FakeHaproxy, certdir: Path) -> None:
    """The connection drops inside a transaction but HAProxy lives on: our transaction is aborted, then redone."""
    on_nth(fake, "commit ssl cert", 2, lambda state: setattr(state, "hangup", True), before=True)
    result, failure, _ = run([fake.socket], certificates=items(certdir, 3))
    assert failure is None, failure
    assert [c["status"] for c in result["certificates"]] == ["Used"] * 3
    assert fake.state.transaction is None
    assert "abort ssl cert " + result["certificates"][1]["path"] in fake.state.log


def test_another_client_attached_it_first(fake: FakeHaproxy, certdir: Path) -> None:
    """'add ssl crt-list' answered 'already exists' (another deployer was quicker): read back, not failed."""
    path = str(certdir / "a.test.pem")

    def attach(state: State) -> None:
        state.lists[str(certdir)].append(path)

    fake.state.hooks["add ssl crt-list"] = attach
    result, failure, _ = run([fake.socket], path=path, pem_content=bundle(["a.test"]).decode())
    assert failure is None, failure
    assert result["status"] == "Used"


def test_check_mode_does_the_same_checks(fake: FakeHaproxy, certdir: Path) -> None:
    path = certdir / "a.test.pem"
    failure = cert_run.run(
        {"socket": [fake.socket], "path": str(path), "pem_content": bundle(["a.test"]).decode(), "crt_list": "/x"},
        check_mode=True,
    ).failure
    assert failure is not None and "HAProxy has no crt-list /x" in failure
    outcome = cert_run.run(
        {"socket": [fake.socket], "path": str(path), "pem_content": bundle(["a.test"]).decode()}, check_mode=True
    )
    result, failure = outcome.result, outcome.failure
    assert failure is None and result["action"] == "created" and not path.exists()
