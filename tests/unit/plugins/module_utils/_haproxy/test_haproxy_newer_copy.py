# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A bundle never replaces a newer certificate for the same names (deploy.newer_copy).

Two runs that deploy one name at once (two fleet runs, each with its own order) must end
on the same certificate wherever they meet, in either order.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import threading
import typing as t
from pathlib import Path

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _lock
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import cert_run
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.commands import pem_payload
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.deploy import Copy, newer_copy
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import CertInfo
from tests.unit.plugins.module_utils._haproxy.fake_haproxy import FakeHaproxy
from tests.unit.plugins.module_utils._haproxy.testcerts import _key_pem, _pem, authority, serial_of

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
DAY = dt.timedelta(days=1)
NAMES = ("a.test", "www.a.test")


def offered(
    serial: str = "10", nb: dt.datetime = NOW - DAY, na: dt.datetime = NOW + 89 * DAY, names: tuple[str, ...] = NAMES
) -> CertInfo:
    return CertInfo(serial, nb, na, names, "CN=a.test", "CN=CA", "00" * 20, "ec256")


def copy(
    serial: str = "20",
    nb: dt.datetime | None = NOW - DAY,
    na: dt.datetime | None = NOW + 89 * DAY,
    names: tuple[str, ...] = NAMES,
    where: str = "served on /run/haproxy/admin.sock",
) -> Copy:
    return Copy(where, serial, nb, na, names)


# (case, offered, copies, index of the copy kept or None: deploy the offered one)
CASES: list[tuple[str, CertInfo, list[Copy], int | None]] = [
    ("nothing served", offered(), [], None),
    ("later notBefore wins", offered(), [copy(nb=NOW - DAY + dt.timedelta(seconds=1))], 0),
    ("earlier notBefore loses", offered(), [copy(nb=NOW - 2 * DAY)], None),
    (
        "earlier notBefore loses even with a later notAfter",
        offered(),
        [copy(nb=NOW - 2 * DAY, na=NOW + 200 * DAY)],
        None,
    ),
    ("same notBefore: later notAfter wins", offered(), [copy(na=NOW + 90 * DAY)], 0),
    ("same notBefore: earlier notAfter loses", offered(), [copy(na=NOW + 88 * DAY)], None),
    ("same dates: higher serial wins", offered(serial="10"), [copy(serial="20")], 0),
    ("same dates: lower serial loses", offered(serial="20"), [copy(serial="10")], None),
    ("serials compare as numbers, not text", offered(serial="0F"), [copy(serial="0100")], 0),
    ("serials with colons and case", offered(serial="0a"), [copy(serial="00:0B")], 0),
    ("the same certificate is no newer one", offered(serial="20"), [copy(serial="20")], None),
    ("other names never count", offered(), [copy(nb=NOW, names=("a.test",))], None),
    ("names compare as a set, any case and order", offered(), [copy(nb=NOW, names=("WWW.A.test", "a.test"))], 0),
    (
        "an expired copy never counts",
        offered(),
        [copy(nb=NOW - 30 * DAY + DAY, na=NOW - dt.timedelta(seconds=1))],
        None,
    ),
    ("unknown notBefore never counts", offered(), [copy(nb=None)], None),
    ("unknown notAfter never counts", offered(), [copy(na=None)], None),
    ("addresses only: nothing to compare by", offered(names=("192.0.2.1",)), [copy(nb=NOW, names=())], None),
    (
        "addresses are left out of the names",
        offered(names=("a.test", "192.0.2.1")),
        [copy(nb=NOW, names=("a.test",))],
        0,
    ),
    (
        "the newest of several copies",
        offered(),
        [
            copy(serial="1", nb=NOW - DAY + dt.timedelta(seconds=5)),
            copy(serial="2", nb=NOW - DAY + dt.timedelta(seconds=9)),
            copy(serial="3", nb=NOW - 3 * DAY),
        ],
        1,
    ),
    ("an older copy beside a newer one", offered(), [copy(nb=NOW - 3 * DAY), copy(serial="30", na=NOW + 90 * DAY)], 1),
]


@pytest.mark.parametrize(("case", "info", "copies", "kept"), CASES, ids=[c[0] for c in CASES])
def test_newer_copy(case: str, info: CertInfo, copies: list[Copy], kept: int | None) -> None:
    assert newer_copy(info, copies, NOW) == (None if kept is None else copies[kept]), case


@pytest.mark.parametrize("first", [0, 1])
def test_two_offers_meet_on_the_same_one_in_either_order(first: int) -> None:
    """Whichever run comes second, the certificate left is the same: the order is total."""
    a, b = offered(serial="0A"), offered(serial="0B")
    runs = [a, b] if first == 0 else [b, a]
    served: CertInfo | None = None
    for info in runs:
        if served is None or newer_copy(info, [copy(served.serial, served.not_before, served.not_after)], NOW) is None:
            served = info
    assert served is b


# ------------------------------------------------------- through the deploy


def _bundle(start: dt.datetime, domains: t.Sequence[str] = ("a.test",)) -> bytes:
    ca = authority()
    cert, key = ca.issue(list(domains), not_before=start)
    return _pem(cert) + b"".join(_pem(c) for c in ca.chain) + _key_pem(key)


def _run(fake: FakeHaproxy, **params: t.Any) -> tuple[dict[str, t.Any], str | None]:
    outcome = cert_run.run({"socket": [fake.socket], "timeout": 2.0, "busy_timeout": 0.5, **params})
    return outcome.result, outcome.failure


def _sent(fake: FakeHaproxy) -> list[str]:
    return [line for line in fake.state.log if not line.startswith("show")]


def test_a_newer_served_certificate_is_kept(fake: FakeHaproxy, certdir: Path) -> None:
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    path = certdir / "a.test.pem"
    older, newer = _bundle(now - dt.timedelta(hours=2)), _bundle(now - dt.timedelta(hours=1))
    issued = (now - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result, failure = _run(fake, path=str(path), pem_content=newer.decode())
    assert failure is None and result["action"] == "created"
    for write_file in (True, False):  # the newer one on disk too (as deployed), or only served
        if not write_file:
            path.unlink()
        fake.state.log.clear()
        result, failure = _run(fake, path=str(path), pem_content=older.decode(), write_file=write_file)
        assert failure is None and not result["changed"] and result["action"] == "unchanged", result
        assert result["reason"] == (
            f"a newer certificate (serial {serial_of(newer)}, issued {issued}) is already served on {fake.socket}; kept"
        )
        assert not result["file_changed"] and result["status"] == "Used"
        assert result["diff"]["before"]["serial"] == result["diff"]["after"]["serial"] == serial_of(newer)
        assert _sent(fake) == []
        assert fake.state.stores[str(path)].pem == pem_payload(newer)
    assert not path.exists()
    path.write_bytes(pem_payload(newer).encode())
    # and the newer one offered again later replaces nothing either: it is served
    result, failure = _run(fake, path=str(path), pem_content=newer.decode())
    assert (
        failure is None
        and result["action"] == "unchanged"
        and result["reason"] == "HAProxy already serves this certificate"
    )


def test_a_newer_certificate_for_other_names_is_replaced(fake: FakeHaproxy, certdir: Path) -> None:
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    path = certdir / "a.test.pem"
    newer = _bundle(now - dt.timedelta(hours=1), ["a.test", "b.test"])
    older = _bundle(now - dt.timedelta(hours=2), ["a.test"])
    _run(fake, path=str(path), pem_content=newer.decode())
    result, failure = _run(fake, path=str(path), pem_content=older.decode())
    assert failure is None and result["action"] == "updated" and result["serial"] == serial_of(older)
    assert fake.state.stores[str(path)].pem == pem_payload(older)


def test_a_newer_file_on_disk_is_deployed_instead(fake: FakeHaproxy, certdir: Path) -> None:
    """Another run wrote its newer bundle and did not push it (yet): this run pushes that file."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    path = certdir / "a.test.pem"
    served, offered_now, on_disk = (_bundle(now - dt.timedelta(hours=h)) for h in (3, 2, 1))
    fake.add(str(path), pem_payload(served).encode(), crt_list=str(certdir))
    path.write_bytes(pem_payload(on_disk).encode())
    os.chmod(path, 0o640)
    result, failure = _run(fake, path=str(path), pem_content=offered_now.decode())
    assert failure is None and result["action"] == "updated", result
    assert result["serial"] == serial_of(on_disk) and not result["file_changed"]
    issued = (now - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert result["reason"] == (
        f"a newer certificate (serial {serial_of(on_disk)}, issued {issued}) is on disk at {path}: deployed it"
        f" instead of the one offered (serial {serial_of(offered_now)}); new serial"
    )
    assert fake.state.stores[str(path)].pem == pem_payload(on_disk)
    assert path.read_bytes() == pem_payload(on_disk).encode()


def test_an_unreadable_file_on_disk_is_replaced(fake: FakeHaproxy, certdir: Path) -> None:
    path = certdir / "a.test.pem"
    path.write_text("not a bundle")
    pem = _bundle(dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
    result, failure = _run(fake, path=str(path), pem_content=pem.decode())
    assert failure is None and result["action"] == "created" and result["file_changed"]
    assert path.read_bytes() == pem_payload(pem).encode()


def test_the_run_lock_is_taken_in_the_certificate_directory(fake: FakeHaproxy, certdir: Path) -> None:
    path = certdir / "a.test.pem"
    pem = _bundle(dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
    _run(fake, path=str(path), pem_content=pem.decode())
    assert sorted(os.listdir(certdir)) == [".tlsops-haproxy-acme.lock", "a.test.pem"]


def _hold(certdir: Path, seconds: float) -> threading.Thread:
    """Another run's hold on the directory's lock (its own open file) for ``seconds``."""
    fd = os.open(_lock.lock_path(str(certdir)), os.O_RDONLY | os.O_CREAT, 0o640)
    fcntl.flock(fd, fcntl.LOCK_EX)

    def release() -> None:
        threading.Event().wait(seconds)
        os.close(fd)

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    return thread


def test_a_deploy_waits_for_the_run_lock(fake: FakeHaproxy, certdir: Path) -> None:
    path = certdir / "a.test.pem"
    pem = _bundle(dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
    holder = _hold(certdir, 0.5)
    result, failure = _run(fake, path=str(path), pem_content=pem.decode())
    holder.join()
    assert failure is None and result["action"] == "created"


def test_a_lock_held_too_long_fails_with_nothing_written(
    fake: FakeHaproxy, certdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_lock = _lock.run_lock
    monkeypatch.setattr(
        _lock, "run_lock", lambda directory, timeout=None, enabled=True: run_lock(directory, 0.2, enabled)
    )
    path = certdir / "a.test.pem"
    pem = _bundle(dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
    holder = _hold(certdir, 1.0)
    result, failure = _run(fake, path=str(path), pem_content=pem.decode())
    holder.join()
    assert failure is not None and "another run holds the lock" in failure and "gave up after 0.2 s" in failure
    assert result["action"] == "failed" and not path.exists() and fake.state.log == []


def test_by_dates_only_a_copy_of_the_same_second_is_not_newer() -> None:
    """Two certificates issued in the same second differ only by serial: the file at path wins then."""
    same_second = copy(serial="FF")
    assert newer_copy(offered(serial="10"), [same_second], NOW) is same_second
    assert newer_copy(offered(serial="10"), [same_second], NOW, by_serial=False) is None
    later = copy(serial="01", nb=NOW - DAY + dt.timedelta(seconds=1))
    assert newer_copy(offered(serial="10"), [later], NOW, by_serial=False) is later
