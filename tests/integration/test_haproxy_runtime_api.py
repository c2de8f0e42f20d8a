# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""haproxy_runtime_cert / _info logic against the lab's real HAProxy (no reload, ever).

What HAProxy serves is checked with a real TLS handshake and SNI, never only with
our own reading of the Runtime API.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import threading
import typing as t
import uuid
from pathlib import Path

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import cert_run, info
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.commands import pem_payload
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.transport import RuntimeApi
from tests.integration.haproxy_runtime_helpers import (
    haproxy_pid,
    open_transaction,
    raw_cli,
    same_hex,
    served_serial,
)
from tests.lab.lab import Lab, LabInfo
from tests.unit.plugins.module_utils._haproxy.testcerts import bundle, mismatched_bundle, serial_of

ROOT = Path(__file__).resolve().parents[2]
# The distribution's Python (and its cryptography package): what a host's renewal job runs
# with, and one that 'nobody' may execute (the venv's interpreter lives under /root).
HOST_PYTHON = "/usr/bin/python3"


def names(prefix: str) -> tuple[str, str]:
    """A fresh host name and its certificate file name (the lab HAProxy is shared)."""
    host = f"{prefix}-{uuid.uuid4().hex[:8]}.test"
    return host, f"{host}.pem"


def run(lab: LabInfo, check_mode: bool = False, **params: t.Any) -> tuple[dict[str, t.Any], str | None]:
    args: dict[str, t.Any] = {"socket": [lab.lab_socket], "timeout": 5.0, "busy_timeout": 2.0, **params}
    outcome = cert_run.run(args, check_mode=check_mode)
    result, failure = outcome.result, outcome.failure
    return result, failure


def test_new_update_unchanged_absent(lab: LabInfo) -> None:
    host, file = names("rt")
    path = os.path.join(lab.lab_cert_dir, file)
    pid = haproxy_pid(lab.lab_socket)
    first = bundle([host])
    params: dict[str, t.Any] = {
        "path": path,
        "pem_content": first.decode(),
        "verify_address": f"127.0.0.1:{lab.lab_https_port}",
    }

    result, failure = run(lab, check_mode=True, **params)
    assert failure is None and result["changed"] and result["action"] == "created"
    assert served_serial(lab.lab_https_port, host) is None and not os.path.exists(path)

    result, failure = run(lab, **params)
    assert failure is None and result["action"] == "created" and result["verified"] is True
    assert same_hex(served_serial(lab.lab_https_port, host), serial_of(first))
    assert Path(path).read_bytes() == pem_payload(first).encode()

    for check_mode in (True, False):
        result, failure = run(lab, check_mode=check_mode, **params)
        assert failure is None and not result["changed"] and result["action"] == "unchanged"

    second = bundle([host])
    result, failure = run(lab, **{**params, "pem_content": second.decode()})
    assert failure is None and result["action"] == "updated" and result["reason"] == "new serial"
    assert same_hex(served_serial(lab.lab_https_port, host), serial_of(second))

    result, failure = run(lab, path=path, state="absent")
    assert failure is None and result["action"] == "removed" and not os.path.exists(path)
    assert served_serial(lab.lab_https_port, host) is None  # strict-sni: nothing for that name any more
    assert haproxy_pid(lab.lab_socket) == pid  # never reloaded
    assert not open_transaction(lab.lab_socket)


@pytest.mark.parametrize("left_by", ["new", "new+set+commit"])
def test_unused_trap(lab: LabInfo, left_by: str) -> None:
    """A name HAProxy holds but does not serve ends Used and served."""
    host, file = names("unused")
    path = os.path.join(lab.lab_cert_dir, file)
    pem = bundle([host])
    commands = [f"new ssl cert {path}"]
    if left_by != "new":
        commands += [f"set ssl cert {path} <<\n" + pem_payload(pem), f"commit ssl cert {path}"]
    raw_cli(lab.lab_socket, *commands)
    (detail,) = raw_cli(lab.lab_socket, f"show ssl cert {path}")
    assert ("Status: Empty" if left_by == "new" else "Status: Unused") in detail
    assert served_serial(lab.lab_https_port, host) is None

    result, failure = run(lab, path=path, pem_content=pem.decode())
    assert failure is None, failure
    assert result["status"] == "Used"
    assert result["action"] == ("created" if left_by == "new" else "updated")
    assert same_hex(served_serial(lab.lab_https_port, host), serial_of(pem))
    run(lab, path=path, state="absent")


def _open_foreign(lab: LabInfo) -> tuple[str, str]:
    """Another client's transaction: 'new ssl cert' + 'set ssl cert', never committed."""
    host, file = names("foreign")
    path = os.path.join(lab.lab_cert_dir, file)
    replies = raw_cli(lab.lab_socket, f"new ssl cert {path}", f"set ssl cert {path} <<\n" + pem_payload(bundle([host])))
    assert "Transaction created" in replies[1]
    return host, path


def _close_foreign(lab: LabInfo, path: str) -> None:
    raw_cli(lab.lab_socket, f"abort ssl cert {path}", f"del ssl cert {path}")


def test_foreign_transaction_waited_then_reported(lab: LabInfo) -> None:
    _, foreign = _open_foreign(lab)
    host, file = names("blocked")
    path = os.path.join(lab.lab_cert_dir, file)
    try:
        _result, failure = run(lab, path=path, pem_content=bundle([host]).decode(), busy_timeout=1.0)
        assert failure is not None
        assert f"transaction on {foreign} has been open for more than 1 s" in failure
        assert "abort_foreign_transaction" in failure
        (listing,) = raw_cli(lab.lab_socket, "show ssl cert")
        assert f"*{foreign}" in listing  # theirs is untouched, ours never started
        assert path not in listing.split()  # the store we made was removed again
    finally:
        _close_foreign(lab, foreign)
    assert not open_transaction(lab.lab_socket)


def test_foreign_transaction_aborted_on_request(lab: LabInfo) -> None:
    _, foreign = _open_foreign(lab)
    host, file = names("taker")
    path = os.path.join(lab.lab_cert_dir, file)
    pem = bundle([host])
    try:
        result, failure = run(
            lab, path=path, pem_content=pem.decode(), busy_timeout=0.5, abort_foreign_transaction=True
        )
        assert failure is None, failure
        assert result["aborted_transactions"] == [foreign]
        assert same_hex(served_serial(lab.lab_https_port, host), serial_of(pem))
        assert not open_transaction(lab.lab_socket)
    finally:
        raw_cli(lab.lab_socket, f"del ssl cert {foreign}")
        run(lab, path=path, state="absent")


def test_haproxy_set_during_foreign_transaction(lab: LabInfo) -> None:
    """What HAProxy itself does with 'set ssl cert B' while A's transaction is open.

    2.6.12 writes B's payload into A's transaction ("Transaction updated for
    certificate A!"); later versions refuse. CertSession handles both.
    """
    _, foreign = _open_foreign(lab)
    host, file = names("other")
    other = os.path.join(lab.lab_cert_dir, file)
    try:
        (reply,) = raw_cli(lab.lab_socket, f"set ssl cert {other} <<\n" + pem_payload(bundle([host])))
        assert reply in (f"Transaction updated for certificate {foreign}!",) or reply.startswith(
            "The ongoing transaction is about"
        )
    finally:
        _close_foreign(lab, foreign)


def test_mismatched_key_refused_nothing_changes(lab: LabInfo) -> None:
    host, file = names("mismatch")
    path = os.path.join(lab.lab_cert_dir, file)
    good = bundle([host])
    run(lab, path=path, pem_content=good.decode())
    before = Path(path).read_bytes()
    _result, failure = run(lab, path=path, pem_content=mismatched_bundle([host]).decode())
    assert failure is not None and "private key does not match" in failure
    assert same_hex(served_serial(lab.lab_https_port, host), serial_of(good))
    assert Path(path).read_bytes() == before
    run(lab, path=path, state="absent")


def test_name_with_newline_refused_nothing_sent(lab: LabInfo) -> None:
    opened: list[str] = []

    def factory(address: str, timeout: float) -> RuntimeApi:
        opened.append(address)
        return RuntimeApi(address, timeout)

    params = {
        "socket": [lab.lab_socket],
        "path": f"{lab.lab_cert_dir}/x.pem\nshow info",
        "pem_content": bundle(["x.test"]).decode(),
    }
    failure = cert_run.run(params, api_factory=factory).failure
    assert failure is not None and "nothing was sent" in failure
    assert opened == []  # not even a connection


def test_socket_missing(lab: LabInfo, tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.sock")
    path = str(tmp_path / "a.pem")
    _result, failure = run(lab, socket=[missing], path=path, pem_content=bundle(["a.test"]).decode())
    assert failure is not None and f"HAProxy's stats socket {missing} does not exist" in failure
    assert os.path.exists(path)  # the file is written anyway: a restart serves it


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(HOST_PYTHON), reason="needs root and the host's python3")
def test_permission_denied_as_nobody(make_lab: t.Callable[..., Lab]) -> None:
    """A user who may not open the socket gets a clear message (the module run as 'nobody')."""
    own = make_lab()
    assert own.info is not None
    socket_dir = Path(own.info.dir)
    os.chmod(socket_dir, 0o755)  # only the socket itself (root, mode 0600) stands in the way
    os.chmod(own.info.lab_socket, 0o600)
    script = (
        "import json, sys; sys.path.insert(0, sys.argv[1]);"
        "from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import info;"
        "from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import HaproxyAcmeError\n"
        "try:\n    info.run({'socket': sys.argv[2]})\nexcept HaproxyAcmeError as exc:\n    print(json.dumps(exc.as_result()))"
    )
    pwd.getpwnam("nobody")
    proc = subprocess.run(
        [
            "runuser",
            "-u",
            "nobody",
            "--",
            HOST_PYTHON,
            "-c",
            script,
            str(ROOT / "build" / "collections"),
            own.info.lab_socket,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    failure = json.loads(proc.stdout)
    assert failure["msg"].startswith(f"permission denied on HAProxy's stats socket {own.info.lab_socket}")
    assert failure["socket"] == own.info.lab_socket


def test_restart_serves_the_same_serial_from_disk(make_lab: t.Callable[..., Lab]) -> None:
    own = make_lab()
    assert own.info is not None
    host, file = names("restart")
    path = os.path.join(own.info.lab_cert_dir, file)
    pem = bundle([host])
    result, failure = run(own.info, path=path, pem_content=pem.decode())
    assert failure is None and result["action"] == "created"
    old_pid = own.haproxy_pid()
    new_pid = own.start_haproxy()  # a real restart: HAProxy reads the crt directory from disk
    assert new_pid != old_pid
    assert same_hex(served_serial(own.info.lab_https_port, host), serial_of(pem))
    result, failure = run(own.info, path=path, pem_content=pem.decode())
    assert failure is None and result["action"] == "unchanged"


def test_info_reports_what_is_served(lab: LabInfo) -> None:
    host, file = names("info")
    path = os.path.join(lab.lab_cert_dir, file)
    pem = bundle([host], days=12)
    run(lab, path=path, pem_content=pem.decode())
    try:
        result = info.run({"socket": lab.lab_socket, "expiring_within_days": 15}).result
        mine = [c for c in result["certificates"] if c["path"] == path]
        assert len(mine) == 1
        entry = mine[0]
        assert entry["status"] == "Used" and same_hex(entry["serial"], serial_of(pem))
        assert entry["domains"] == [host] and 11 <= entry["days_left"] <= 12
        assert entry["crt_lists"] == [lab.lab_cert_dir]
        assert entry["chain"] == ["/C=XX/O=tlsops test/CN=Test Intermediate"]
        assert all(c["days_left"] < 15 for c in result["certificates"])
    finally:
        run(lab, path=path, state="absent")


def test_three_clients_at_once(lab: LabInfo) -> None:
    """Three runs racing on one HAProxy (one transaction per process): all finish, nothing is mixed up."""
    batches = []
    for prefix in ("racea", "raceb", "racec"):
        hosts = [names(prefix)[0] for _ in range(15)]
        batches.append([(h, os.path.join(lab.lab_cert_dir, f"{h}.pem"), bundle([h])) for h in hosts])
    outcomes: list[tuple[dict[str, t.Any], str | None]] = []

    def push(batch: list[tuple[str, str, bytes]]) -> None:
        items = [{"path": p, "pem_content": pem.decode()} for _, p, pem in batch]
        outcomes.append(run(lab, certificates=items, busy_timeout=20.0))

    threads = [threading.Thread(target=push, args=(b,)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        assert [failure for _, failure in outcomes] == [None, None, None]
        for batch in batches:
            for host, _, pem in batch:
                assert same_hex(served_serial(lab.lab_https_port, host), serial_of(pem)), host
        assert not open_transaction(lab.lab_socket)
    finally:
        for batch in batches:
            run(lab, certificates=[{"path": p, "state": "absent"} for _, p, _ in batch])
