# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Files, sockets and results together (cert_run.run), against the fake stats socket."""

from __future__ import annotations

import json
import os
import pwd
import typing as t
from pathlib import Path

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import ConfigError
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import cert_run
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.commands import pem_payload
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.tls import sni_for, split_host_port
from tests.unit.plugins.module_utils._haproxy.fake_haproxy import FakeHaproxy
from tests.unit.plugins.module_utils._haproxy.testcerts import bundle, mismatched_bundle, serial_of

# certdir and fake: conftest.py beside this file.


def run(
    fake: FakeHaproxy | list[FakeHaproxy], check_mode: bool = False, **params: t.Any
) -> tuple[dict[str, t.Any], str | None]:
    fakes = fake if isinstance(fake, list) else [fake]
    args = {"socket": [f.socket for f in fakes], "timeout": 2.0, "busy_timeout": 0.5, **params}
    outcome = cert_run.run(args, check_mode=check_mode)
    return outcome.result, outcome.failure


def sent(fake: FakeHaproxy) -> list[str]:
    return [line for line in fake.state.log if not line.startswith("show")]


def test_four_runs(fake: FakeHaproxy, certdir: Path) -> None:
    path = str(certdir / "a.test.pem")
    pem = bundle(["a.test"])
    # check mode: predicted, nothing written or sent
    result, failure = run(fake, check_mode=True, path=path, pem_content=pem.decode())
    assert failure is None and result["changed"] and result["action"] == "created"
    assert not os.path.exists(path) and sent(fake) == []
    # real
    result, failure = run(fake, path=path, pem_content=pem.decode())
    assert failure is None and result["changed"] and result["action"] == "created"
    assert result["status"] == "Used" and result["serial"] == serial_of(pem)
    assert Path(path).read_bytes() == pem_payload(pem).encode()
    assert os.stat(path).st_mode & 0o7777 == 0o640
    # check mode again, real again: nothing to do
    for check_mode in (True, False):
        fake.state.log.clear()
        result, failure = run(fake, check_mode=check_mode, path=path, pem_content=pem.decode())
        assert failure is None and not result["changed"] and result["action"] == "unchanged"
        assert sent(fake) == []


def test_push_the_file_at_path(fake: FakeHaproxy, certdir: Path) -> None:
    path = certdir / "a.test.pem"
    path.write_bytes(pem_payload(bundle(["a.test"])).encode())
    os.chmod(path, 0o640)
    result, failure = run(fake, path=str(path))
    assert failure is None and result["action"] == "created" and not result["file_changed"]


def test_haproxy_down_file_still_written(tmp_path: Path, certdir: Path) -> None:
    path = str(certdir / "a.test.pem")
    socket = str(tmp_path / "gone.sock")
    outcome = cert_run.run({"socket": [socket], "path": path, "pem_content": bundle(["a.test"]).decode()})
    result, failure = outcome.result, outcome.failure
    assert failure is not None
    assert f"stats socket {socket} does not exist" in failure
    assert "was written, so HAProxy loads it when it next starts" in failure
    assert os.path.exists(path) and result["file_changed"] and result["action"] == "failed"


def test_mismatched_key_refused_nothing_touched(fake: FakeHaproxy, certdir: Path) -> None:
    path = certdir / "a.test.pem"
    good = bundle(["a.test"])
    run(fake, path=str(path), pem_content=good.decode())
    fake.state.log.clear()
    _result, failure = run(fake, path=str(path), pem_content=mismatched_bundle(["a.test"]).decode())
    assert failure is not None and "does not match" in failure
    assert fake.state.log == []  # HAProxy was not even asked
    assert path.read_bytes() == pem_payload(good).encode()
    assert fake.state.stores[str(path)].pem == pem_payload(good)


def test_newline_in_name_refused_nothing_sent(fake: FakeHaproxy, certdir: Path) -> None:
    _result, failure = run(fake, path=f"{certdir}/a.pem\nshow info", pem_content=bundle(["a.test"]).decode())
    assert failure is not None and "nothing was sent" in failure
    assert fake.state.log == [] and fake.connections == 0
    assert os.listdir(certdir) == []


def test_batch_one_bad_does_not_stop_the_others(fake: FakeHaproxy, certdir: Path) -> None:
    items = [
        {"path": str(certdir / "a.pem"), "pem_content": bundle(["a.test"]).decode()},
        {"path": str(certdir / "bad.pem"), "pem_content": mismatched_bundle(["bad.test"]).decode()},
        {"path": str(certdir / "c.pem"), "pem_content": bundle(["c.test"]).decode()},
        {"path": str(certdir / "missing.pem"), "pem_src": str(certdir / "nope.pem")},
    ]
    result, failure = run(fake, certificates=items)
    assert failure is not None and failure.startswith("2 of 4 certificates failed; first: ")
    actions = [c["action"] for c in result["certificates"]]
    assert actions == ["created", "failed", "created", "failed"]
    assert "does not exist" in result["certificates"][3]["msg"]
    assert "path" not in result  # no single-certificate fields at the top


def test_two_sockets_get_the_same(tmp_path: Path, certdir: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    with FakeHaproxy(tmp_path / "one", crt_dir=str(certdir)) as one, FakeHaproxy(
        tmp_path / "two", crt_dir=str(certdir)
    ) as two:
        path = str(certdir / "a.pem")
        two.add(path, bundle(["a.test"]))
        pem = bundle(["a.test"])
        result, failure = run([one, two], path=path, pem_content=pem.decode())
        assert failure is None
        assert [s["action"] for s in result["sockets"]] == ["created", "updated"]
        assert result["action"] == "created"
        for server in (one, two):
            assert server.state.stores[path].pem == pem_payload(pem)


def test_absent(fake: FakeHaproxy, certdir: Path) -> None:
    path = certdir / "a.pem"
    run(fake, path=str(path), pem_content=bundle(["a.test"]).decode())
    result, failure = run(fake, check_mode=True, path=str(path), state="absent")
    assert failure is None and result["action"] == "removed" and path.exists()
    result, failure = run(fake, path=str(path), state="absent")
    assert failure is None and result["action"] == "removed" and result["file_changed"]
    assert not path.exists() and str(path) not in fake.state.stores
    result, failure = run(fake, path=str(path), state="absent")
    assert failure is None and not result["changed"]


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_owner_of_replaced_file_is_kept(fake: FakeHaproxy, certdir: Path) -> None:
    path = certdir / "a.pem"
    path.write_bytes(b"old")
    nobody = pwd.getpwnam("nobody")
    os.chown(path, nobody.pw_uid, nobody.pw_gid)
    run(fake, path=str(path), pem_content=bundle(["a.test"]).decode())
    assert os.stat(path).st_uid == nobody.pw_uid
    run(fake, path=str(path), pem_content=bundle(["a.test"]).decode(), owner="root", group="root")
    assert os.stat(path).st_uid == 0


def test_diff_is_metadata_only(fake: FakeHaproxy, certdir: Path) -> None:
    path = str(certdir / "a.pem")
    old = bundle(["a.test"])
    run(fake, path=path, pem_content=old.decode())
    new = bundle(["a.test", "www.a.test"])
    result, _ = run(fake, path=path, pem_content=new.decode())
    diff = result["diff"]
    assert diff["before"]["serial"] == serial_of(old) and diff["after"]["serial"] == serial_of(new)
    assert diff["after"]["domains"] == ["a.test", "www.a.test"]
    assert "PRIVATE" not in json.dumps(result)


def test_duplicate_paths_refused(fake: FakeHaproxy, certdir: Path) -> None:
    item = {"path": str(certdir / "a.pem"), "state": "absent"}
    with pytest.raises(ConfigError, match="listed twice"):
        run(fake, certificates=[item, item])


@pytest.mark.parametrize(
    ("domains", "sni"),
    [(["a.test", "b.test"], "a.test"), (["*.a.test"], "tlsops-verify.a.test"), ([], None),
     # the first DNS name even after an address; addresses only: the first one (asked without SNI)
     (["192.0.2.7", "a.test"], "a.test"), (["127.0.0.1", "::1"], "127.0.0.1"), (["::1"], "::1")],
)
def test_sni_for(domains: list[str], sni: str | None) -> None:
    assert sni_for(domains) == sni


@pytest.mark.parametrize(("address", "parts"), [("127.0.0.1:443", ("127.0.0.1", 443)), ("[::1]:8443", ("::1", 8443))])
def test_split_host_port(address: str, parts: tuple[str, int]) -> None:
    assert split_host_port(address) == parts


def test_split_host_port_refuses() -> None:
    with pytest.raises(ConfigError):
        split_host_port("localhost")


def test_many_files_sync_their_directory_once_before_anything_is_sent(
    fake: FakeHaproxy, certdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _files

    synced: list[tuple[str, int]] = []
    monkeypatch.setattr(_files, "_fsync_dir", lambda d: synced.append((d, len(sent(fake)))))
    certs = [{"path": str(certdir / f"c{i}.test.pem"), "pem_content": bundle([f"c{i}.test"]).decode()} for i in range(5)]
    result, failure = run(fake, certificates=certs)
    assert failure is None and result["changed"], result
    assert synced == [(str(certdir), 0)], "one fsync of the directory, before the first command"
