# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""haproxy_runtime_cert against a real HAProxy that misbehaves: restarted, reloaded, shared.

One lab for the file, its HAProxy in master-worker mode (``-W -S``) as Debian's unit runs
it, so that SIGUSR2 to the master is a real reload: a new worker loads the configuration
and the files on disk while the old one keeps its open connections until they close. A
restart is the lab's own ``start_haproxy()``: the old process stopped, a new one started.

What HAProxy serves is checked with TLS handshakes, its state with the test's own CLI
client (tests/integration/haproxy_runtime_helpers.py), never only with the module's word.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import typing as t
import uuid
from pathlib import Path

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import cert_run
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import commands as cmd
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.transport import RuntimeApi
from tests.integration.haproxy_runtime_helpers import haproxy_pid, raw_cli, same_hex, served_serial, wait_for
from tests.lab.lab import Lab, LabInfo
from tests.unit.plugins.module_utils._haproxy.testcerts import bundle, serial_of

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "ansible_collections.tlsops.haproxy_acme.plugins.modules"


class MasterWorkerLab(Lab):
    """The lab with HAProxy as master and worker (``-W -S <dir>/master.sock``); ``reload()`` is SIGUSR2."""

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        if name == "haproxy":
            argv = [argv[0], "-W", "-S", str(self.dir / "master.sock"), *argv[1:]]
        super()._spawn(name, argv, env)

    @property
    def socket(self) -> str:
        assert self.info is not None
        return self.info.lab_socket

    def worker_pid(self) -> int | None:
        """The worker a new connection reaches; None while nothing answers."""
        try:
            return haproxy_pid(self.socket)
        except (OSError, AssertionError):
            return None

    def reload(self) -> int:
        """SIGUSR2 to the master; returns the new worker's PID once it answers on the stats socket."""
        before = self.worker_pid()
        os.kill(self.procs["haproxy"].pid, signal.SIGUSR2)
        assert wait_for(lambda: self.worker_pid() not in (None, before), timeout=15), "no new worker after SIGUSR2"
        return t.cast(int, self.worker_pid())

    def master(self, command: str) -> str:
        """One command on the master CLI (its prompt differs from a worker's: no prompt mode here)."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.dir / "master.sock"))
            sock.sendall(command.encode() + b"\n")
            sock.shutdown(socket.SHUT_WR)  # the master answers once the client is done sending
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        return data.decode()

    def master_when_up(self, command: str) -> str | None:
        """:meth:`master`, or None while the master CLI refuses: after a reload the master
        re-executes itself, and its socket is not listening for a moment (seen on HAProxy 3.0)."""
        try:
            return self.master(command)
        except OSError:
            return None


def api_on(verb: str, nth: int, action: t.Callable[[RuntimeApi], None]) -> type[RuntimeApi]:
    """A RuntimeApi that runs ``action`` once, right after HAProxy's ``nth`` successful reply to ``verb``
    (counted over every connection of the run)."""
    count = [0]

    class Api(RuntimeApi):
        def run(self, command: cmd.Command) -> str:
            reply = super().run(command)
            self._seen(command, reply)
            return reply

        def run_many(self, commands: t.Sequence[cmd.Command], window: int = 32) -> list[str]:
            replies = super().run_many(commands, window)  # a commit is sent with its read-back
            for command, reply in zip(commands, replies):
                self._seen(command, reply)
            return replies

        def _seen(self, command: cmd.Command, reply: str) -> None:
            if command.verb == verb and ("Success!" in reply or reply.startswith("Transaction created")):
                count[0] += 1
                if count[0] == nth:
                    action(self)

    return Api


@pytest.fixture(scope="module")
def mw(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[MasterWorkerLab]:
    lab = MasterWorkerLab(tmp_path_factory.mktemp("faults"))
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()


def hosts(prefix: str, count: int) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"{prefix}{n:03d}-{tag}.test" for n in range(count)]


def write_sources(directory: Path, names: list[str]) -> dict[str, bytes]:
    """One bundle per name, as files the module reads (pem_src): the JSON arguments stay small."""
    directory.mkdir(exist_ok=True)
    pems = {name: bundle([name]) for name in names}
    for name, pem in pems.items():
        (directory / f"{name}.pem").write_bytes(pem)
    return pems


def items(info: LabInfo, source: Path, names: list[str]) -> list[dict[str, str]]:
    return [{"path": f"{info.lab_cert_dir}/{n}.pem", "pem_src": str(source / f"{n}.pem")} for n in names]


def start_module(module: str, args: dict[str, t.Any], tmp_path: Path) -> subprocess.Popen[str]:
    """The module in its own process, as on a managed host (tests/integration/test_acme_modules.py's way)."""
    args_file = tmp_path / f"args-{time.monotonic_ns()}.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "build" / "collections")}
    return subprocess.Popen([sys.executable, "-m", f"{PACKAGE}.{module}", str(args_file)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> dict[str, t.Any]:
    out, err = proc.communicate(timeout=timeout)
    assert "Traceback" not in out + err, out + err
    result = t.cast(dict[str, t.Any], json.loads(out))
    assert (proc.returncode != 0) == bool(result.get("failed")), out
    return result


def ours(info: LabInfo, names: list[str]) -> dict[str, str]:
    """HAProxy's Status for each of ``names`` (``Absent`` when it does not hold it)."""
    paths = [f"{info.lab_cert_dir}/{n}.pem" for n in names]
    replies = raw_cli(info.lab_socket, *(f"show ssl cert {p}" for p in paths))
    status = {}
    for name, reply in zip(names, replies):
        line = next((ln for ln in reply.splitlines() if ln.startswith("Status:")), "Status: Absent")
        status[name] = line.split(":", 1)[1].strip()
    return status


def no_transaction(socket_path: str) -> bool:
    """``show ssl cert`` lists no ``*``-prefixed (uncommitted) entry."""
    (listing,) = raw_cli(socket_path, "show ssl cert")
    return not any(line.startswith("*") for line in listing.splitlines())


def all_served(info: LabInfo, pems: dict[str, bytes]) -> list[str]:
    """Names whose handshake does not show their bundle's serial."""
    return [n for n, pem in pems.items() if not same_hex(served_serial(info.lab_https_port, n), serial_of(pem))]


def remove(info: LabInfo, names: list[str]) -> None:
    cert_run.run({"socket": [info.lab_socket], "timeout": 5.0, "busy_timeout": 10.0,
                  "certificates": [{"path": f"{info.lab_cert_dir}/{n}.pem", "state": "absent"} for n in names]})


# ------------------------------------------------------------------ restart


def test_restart_in_the_middle_of_100(mw: MasterWorkerLab, tmp_path: Path) -> None:
    """HAProxy stopped and started again (a new process) after the 50th of 100 new certificates.

    The restart runs beside the deploy, as it would: the deployer meets a closed connection,
    then a socket nobody answers on, then the new process. That process loaded every file
    from disk (all were written before the push), so the module reconnects, reads everything
    again from it and finishes: every certificate served, none Unused, no transaction open;
    a rerun (the module, in its own process) changes nothing.
    """
    info = t.cast(LabInfo, mw.info)
    names = hosts("rst", 100)
    pems = write_sources(tmp_path / "src", names)
    old_pid = mw.haproxy_pid()
    restarts: list[threading.Thread] = []

    def restart(_api: RuntimeApi) -> None:
        thread = threading.Thread(target=mw.start_haproxy)
        restarts.append(thread)
        thread.start()

    args = {"socket": [info.lab_socket], "timeout": 10.0, "busy_timeout": 10.0,
            "certificates": items(info, tmp_path / "src", names)}
    started = time.monotonic()
    outcome = cert_run.run(args, api_factory=api_on("commit ssl cert", 50, restart))
    result, failure, warnings = outcome.result, outcome.failure, outcome.warnings
    elapsed = time.monotonic() - started
    for thread in restarts:
        thread.join(timeout=30)
    print(f"\nrestart at the 50th commit of 100, deploy {elapsed:.2f} s; warnings: {warnings}")
    assert restarts and mw.haproxy_pid() != old_pid
    assert failure is None, failure
    assert any("was restarted or reloaded during the deploy" in w for w in warnings), warnings
    assert [c["status"] for c in result["certificates"]] == ["Used"] * 100
    assert set(ours(info, names).values()) == {"Used"}
    assert all_served(info, pems) == []
    assert no_transaction(info.lab_socket)
    rerun = finish(start_module("haproxy_runtime_cert", args, tmp_path))
    assert not rerun.get("failed") and not rerun["changed"], rerun.get("msg")
    remove(info, names)


def test_stopped_and_not_back_fails_clearly(mw: MasterWorkerLab, tmp_path: Path) -> None:
    """HAProxy stopped after the 10th of 40 commits and started only after the module's timeout:
    every certificate fails saying so and that its file is written; the next run converges."""
    info = t.cast(LabInfo, mw.info)
    names = hosts("gone", 40)
    pems = write_sources(tmp_path / "src", names)

    def stop(_api: RuntimeApi) -> None:
        haproxy = mw.procs.pop("haproxy")
        haproxy.terminate()
        haproxy.wait(timeout=10)

    args = {"socket": [info.lab_socket], "timeout": 1.0, "busy_timeout": 5.0,
            "certificates": items(info, tmp_path / "src", names)}
    try:
        outcome = cert_run.run(args, api_factory=api_on("commit ssl cert", 10, stop))
        result, failure = outcome.result, outcome.failure
    finally:
        mw.start_haproxy()
    assert failure is not None and failure.startswith("40 of 40 certificates failed")
    for entry in result["certificates"]:
        assert "did not come back within 1 s" in entry["msg"], entry["msg"]
        assert f"{entry['path']} was written, so HAProxy loads it when it next starts" in entry["msg"]
    assert all_served(info, pems) == []  # the new process loaded them all from disk
    rerun = finish(start_module("haproxy_runtime_cert", {**args, "timeout": 10}, tmp_path))
    assert not rerun.get("failed") and not rerun["changed"], rerun.get("msg")
    remove(info, names)


# ------------------------------------------------------------------- reload


@pytest.mark.parametrize("write_file", [True, False])
def test_reload_in_the_middle_of_a_transaction(mw: MasterWorkerLab, write_file: bool) -> None:
    """SIGUSR2 right after 'set ssl cert' opened the 4th transaction of 8.

    HAProxy 2.6 keeps our connection with the old worker (Stopping: 1), which still holds
    the transaction and takes the commit; new connections reach the new worker, which
    loaded the files on disk. The pass ends by checking the process on a new connection,
    finds the new worker and reads everything again from it: with the files written there
    is nothing left to do, without them it pushes them again. No '*' entry anywhere.
    """
    info = t.cast(LabInfo, mw.info)
    names = hosts("rld", 8)
    pems = {n: bundle([n]) for n in names}
    seen: dict[str, t.Any] = {"sets": 0}

    class Reloading(RuntimeApi):
        def run(self, command: cmd.Command) -> str:
            reply = super().run(command)
            if command.verb == "set ssl cert" and reply.startswith("Transaction created"):
                seen["sets"] += 1
                if seen["sets"] == 4:
                    seen["old"] = haproxy_pid(info.lab_socket)
                    seen["new"] = mw.reload()
                    seen["old_listing"] = super().run(cmd.show_certs())  # this connection: the old worker
                    seen["old_info"] = super().run(cmd.show_info())
            return reply

    params = {"socket": [info.lab_socket], "timeout": 5.0, "busy_timeout": 10.0, "write_file": write_file,
              "certificates": [{"path": f"{info.lab_cert_dir}/{n}.pem", "pem_content": pems[n].decode()}
                               for n in names]}
    outcome = cert_run.run(params, api_factory=Reloading)
    result, failure, warnings = outcome.result, outcome.failure, outcome.warnings
    print(f"\nreload {seen.get('old')} -> {seen.get('new')}; warnings: {warnings}")
    assert seen["new"] != seen["old"]
    assert "*" + f"{info.lab_cert_dir}/{names[3]}.pem" in seen["old_listing"]  # the old worker held our transaction
    assert "Stopping: 1" in seen["old_info"]
    assert failure is None, failure
    assert any("was restarted or reloaded during the deploy" in w for w in warnings), warnings
    assert [c["status"] for c in result["certificates"]] == ["Used"] * 8
    assert haproxy_pid(info.lab_socket) == seen["new"]
    assert no_transaction(info.lab_socket)
    assert all_served(info, pems) == []
    # the old worker leaves once our connections are closed
    assert wait_for(lambda: str(seen["old"]) not in (mw.master_when_up("show proc") or str(seen["old"])), timeout=15), \
        mw.master_when_up("show proc")
    remove(info, names)


# ------------------------------------------------------------ two deployers


def test_two_deployers_overlapping(mw: MasterWorkerLab, tmp_path: Path) -> None:
    """Two module processes at once over 30 certificates each, 15 of them shared (the same bundles).

    HAProxy allows one certificate transaction per process; each waits out the other's
    ('Operations on certificates are currently locked!', a foreign open transaction, 2.6's
    'set' landing in the other's transaction) within busy_timeout. Both finish.
    """
    info = t.cast(LabInfo, mw.info)
    names = hosts("two", 45)
    pems = write_sources(tmp_path / "src", names)
    first, second = names[:30], names[15:]
    started = time.monotonic()
    procs = [
        start_module("haproxy_runtime_cert", {"socket": [info.lab_socket], "timeout": 10, "busy_timeout": 30,
                                              "certificates": items(info, tmp_path / "src", part)}, tmp_path)
        for part in (first, second)
    ]
    results = [finish(proc, timeout=90) for proc in procs]
    elapsed = time.monotonic() - started
    print(f"\ntwo deployers: {elapsed:.1f} s; warnings: {[r.get('warnings', []) for r in results]}")
    for result in results:
        assert not result.get("failed"), result.get("msg")
        assert {c["status"] for c in result["certificates"]} == {"Used"}
    assert elapsed < 60
    assert set(ours(info, names).values()) == {"Used"}
    assert all_served(info, pems) == []
    assert no_transaction(info.lab_socket)
    remove(info, names)


def test_two_deployers_while_another_holds_the_lock(mw: MasterWorkerLab, tmp_path: Path) -> None:
    """A third client keeps a transaction open for 2 s: both deployers wait, then finish."""
    info = t.cast(LabInfo, mw.info)
    names = hosts("held", 10)
    pems = write_sources(tmp_path / "src", names)
    holder = f"{info.lab_cert_dir}/holder-{uuid.uuid4().hex[:6]}.test.pem"
    raw_cli(info.lab_socket, f"new ssl cert {holder}",
            f"set ssl cert {holder} <<\n" + cmd.pem_payload(bundle(["holder.test"])))
    releaser = threading.Timer(2.0, lambda: raw_cli(info.lab_socket, f"abort ssl cert {holder}", f"del ssl cert {holder}"))
    releaser.start()
    try:
        procs = [start_module("haproxy_runtime_cert", {"socket": [info.lab_socket], "busy_timeout": 20,
                                                       "certificates": items(info, tmp_path / "src", part)}, tmp_path)
                 for part in (names[:6], names[4:])]
        results = [finish(proc) for proc in procs]
    finally:
        releaser.join()
    for result in results:
        assert not result.get("failed"), result.get("msg")
    assert all_served(info, pems) == [] and no_transaction(info.lab_socket)
    remove(info, names)


# ------------------------------------------------------- before the disk


def test_unknown_crt_list_nothing_written(mw: MasterWorkerLab) -> None:
    info = t.cast(LabInfo, mw.info)
    (name,) = hosts("nolist", 1)
    path = Path(info.lab_cert_dir) / f"{name}.pem"
    outcome = cert_run.run({"socket": [info.lab_socket], "path": str(path),
                            "pem_content": bundle([name]).decode(), "crt_list": "/etc/haproxy/nope.list"})
    result, failure = outcome.result, outcome.failure
    assert failure is not None and "HAProxy has no crt-list /etc/haproxy/nope.list" in failure
    assert f"'show ssl crt-list' lists {info.lab_cert_dir}" in failure
    assert not path.exists() and not result["file_changed"]
    assert ours(info, [name]) == {name: "Absent"}


def test_crt_directory_with_its_slash(mw: MasterWorkerLab) -> None:
    """'crt <dir>/' is listed by HAProxy as '<dir>': given with the slash, it is the same list."""
    info = t.cast(LabInfo, mw.info)
    (name,) = hosts("slash", 1)
    pem = bundle([name])
    outcome = cert_run.run({"socket": [info.lab_socket], "path": f"{info.lab_cert_dir}/{name}.pem",
                            "pem_content": pem.decode(), "crt_list": f"{info.lab_cert_dir}/"})
    result, failure = outcome.result, outcome.failure
    assert failure is None, failure
    assert result["crt_list"] == info.lab_cert_dir
    assert all_served(info, {name: pem}) == []
    remove(info, [name])


def test_socket_that_is_a_regular_file(mw: MasterWorkerLab, tmp_path: Path) -> None:
    info = t.cast(LabInfo, mw.info)
    bogus = tmp_path / "admin.sock"
    bogus.write_text("")
    (name,) = hosts("file", 1)
    path = Path(info.lab_cert_dir) / f"{name}.pem"
    failure = cert_run.run({"socket": [str(bogus)], "path": str(path), "pem_content": bundle([name]).decode()}).failure
    assert failure is not None and f"{bogus} is not a socket (it is a regular file)" in failure
    assert "connection refused" not in failure
    assert not path.exists()
