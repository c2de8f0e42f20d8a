# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""acme_stateless_order against a real pebble under faults: what operators meet at 3 a.m.

Storms (rejected nonces, 503s, resets before and after the CA saw a request, delays,
bodies cut short) are ridden out: every certificate of a batch is issued. A CA that
goes away fails the rest of a batch in one time budget, with one message, and leaves
the files as they were; a rerun converges. Faults come from pebble itself
(``nonce_reject``) or from the lab's fault proxy (tests/lab/faultproxy.py) in front of
it. Validation stays real: pebble asks the lab's HAProxy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import pytest

from tests.integration.test_acme_modules import ROOT, acme_args, no_temp_files, run_module, verify_chain
from tests.lab.faultproxy import FaultProxy
from tests.lab.lab import Lab, count_orders

BATCH = 20
DISTRO_PYTHON = "/usr/bin/python3"  # Debian's, with its cryptography and requests, as managed hosts run
UNREACHABLE = re.compile(r"the ACME server (\S+) is unreachable since (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ): (.+)")


def batch(prefix: str, count: int = BATCH) -> list[dict[str, t.Any]]:
    return [{"name": f"{prefix}{i:03d}", "domains": [f"{prefix}{i:03d}.faults.example"]} for i in range(count)]


def all_issued(result: dict[str, t.Any], count: int = BATCH) -> None:
    actions = [c["action"] for c in result["certificates"]]
    assert actions == ["issued"] * count, result.get("msg")
    assert not result.get("failed")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Lab]:
    """One lab for the proxy's faults; each test sets its own."""
    with_lab = Lab(tmp_path_factory.mktemp("faultlab"))
    with_lab.start()
    yield with_lab
    with_lab.stop()


@pytest.fixture
def proxy(lab: Lab) -> t.Iterator[FaultProxy]:
    started = lab.fault_proxy()
    yield started
    started.stop()
    lab.proxies.remove(started)


@pytest.fixture
def cert_dir(tmp_path: Path) -> Path:
    path = tmp_path / "certs"
    path.mkdir()
    return path


def through(proxy: FaultProxy, lab: Lab, cert_dir: Path, **extra: t.Any) -> dict[str, t.Any]:
    assert lab.info is not None
    return {**acme_args(lab.info, cert_dir, **extra), "directory": proxy.directory}


# ------------------------------------------------------------------ storms


def test_half_the_nonces_rejected(make_lab: t.Callable[..., Lab], cert_dir: Path, tmp_path: Path) -> None:
    """pebble refuses 50 % of good nonces (PEBBLE_WFE_NONCEREJECT): each badNonce costs one round trip."""
    lab = make_lab(nonce_reject=50)
    assert lab.info is not None
    result = run_module("acme_stateless_order", acme_args(lab.info, cert_dir, certificates=batch("n")), tmp_path)
    all_issued(result)
    verify_chain(lab.info, Path(result["certificates"][0]["path"]))


def test_thirty_percent_503_with_retry_after(lab: Lab, proxy: FaultProxy, cert_dir: Path, tmp_path: Path) -> None:
    """A proxy in front of the CA answers 503 + Retry-After: 1 to 30 % of requests; the pauses are
    shared by the batch, so concurrency 8 keeps the batch short."""
    proxy.set(unavailable=0.3, status=503, retry_after="1", seed=1)
    result = run_module("acme_stateless_order", through(proxy, lab, cert_dir, concurrency=8,
                                                        certificates=batch("u")), tmp_path)
    all_issued(result)
    assert proxy.counts["unavailable"] > 20


@pytest.mark.parametrize("where", ["reset_before", "reset_after"])
def test_twenty_percent_resets(lab: Lab, proxy: FaultProxy, cert_dir: Path, tmp_path: Path, where: str) -> None:
    """Connections reset before the CA saw the request, or after it acted on it (the reply lost):
    nothing is lost, at worst a newOrder is placed twice."""
    assert lab.info is not None
    orders = count_orders(lab.pebble_log())
    proxy.set(**{where: 0.2}, seed=2)
    result = run_module("acme_stateless_order", through(proxy, lab, cert_dir, certificates=batch(where[6])), tmp_path)
    all_issued(result)
    assert proxy.counts[where] > 10
    placed = count_orders(lab.pebble_log()) - orders
    assert BATCH <= placed <= BATCH + proxy.counts[where]
    for entry in result["certificates"][::5]:
        verify_chain(lab.info, Path(entry["path"]))


def test_delays_and_requests_that_time_out_after_reaching_the_ca(
        lab: Lab, proxy: FaultProxy, cert_dir: Path, tmp_path: Path) -> None:
    # Latency on half the requests.
    proxy.set(delay=0.2, delay_share=0.5, seed=3)
    all_issued(run_module("acme_stateless_order", through(proxy, lab, cert_dir, certificates=batch("d", 10)),
                          tmp_path), 10)
    # Challenge triggers and finalizes held past the client's timeout, then delivered to pebble:
    # the client reads the authorization or order and goes on from what pebble did.
    proxy.set(delay=3, paths=("/chalZ/", "/finalize-order/"), limit=6, seed=4)
    result = run_module("acme_stateless_order", through(proxy, lab, cert_dir, request_timeout=2,
                                                        certificates=batch("t", 10)), tmp_path)
    all_issued(result, 10)
    assert proxy.counts["delayed"] >= 6 + 5


@pytest.mark.parametrize("python", [sys.executable, DISTRO_PYTHON], ids=["venv", "distro"])
def test_bodies_cut_short_are_lost_replies(lab: Lab, proxy: FaultProxy, cert_dir: Path, tmp_path: Path,
                                           python: str) -> None:
    """A body shorter than its Content-Length is retried (or, for a finalize, read back) like a lost
    reply. Debian 12's urllib3 1.26 hands such a body over without a word: the client checks (the
    distribution's Python has no Ansible: it runs the module's engine, as the host job does)."""
    if not Path(python).exists():
        pytest.skip(f"no {python}")
    proxy.set(truncate=0.2, seed=5)
    result = run_with(python, through(proxy, lab, cert_dir, certificates=batch("x", 10)), tmp_path)
    all_issued(result, 10)
    assert proxy.counts["truncate"] > 3


def test_a_rate_limit_beyond_the_time_bound_fails_at_once_and_says_when(
        lab: Lab, proxy: FaultProxy, cert_dir: Path, tmp_path: Path) -> None:
    proxy.set(unavailable=1.0, status=429, retry_after="3600", paths=("/order-plz",))
    started = time.monotonic()
    result = run_module("acme_stateless_order", through(proxy, lab, cert_dir, certificates=batch("r", 5)), tmp_path)
    assert time.monotonic() - started < 10
    for entry in result["certificates"]:
        assert entry["action"] == "failed"
        assert re.search(r"rateLimited: fault proxy: rate limited \(the server asks to retry after 3600 s, "
                         r"at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)$", entry["msg"]), entry["msg"]
    assert not list(cert_dir.glob("*.pem")) and no_temp_files(cert_dir)


# ------------------------------------------------------------------ the CA goes away


ENGINE = """
import json, sys
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import order_run
outcome = order_run.run(json.load(open(sys.argv[1])))
result = outcome.result
if outcome.failure:
    result.update(failed=True, msg=outcome.failure)
print(json.dumps(result))
"""


def run_with(python: str, args: dict[str, t.Any], tmp_path: Path) -> dict[str, t.Any]:
    """The module under the venv's Python; its engine (order_run) under another one."""
    if python == sys.executable:
        return run_module("acme_stateless_order", args, tmp_path)
    args_file = tmp_path / f"engine-{time.monotonic_ns()}.json"
    args_file.write_text(json.dumps(args))
    proc = subprocess.run([python, "-c", ENGINE, str(args_file)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "build" / "collections")}, check=False)
    assert proc.returncode == 0 and "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return t.cast(dict[str, t.Any], json.loads(proc.stdout))


def start_module(args: dict[str, t.Any], tmp_path: Path) -> subprocess.Popen[str]:
    args_file = tmp_path / f"args-{time.monotonic_ns()}.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "build" / "collections")}
    return subprocess.Popen([sys.executable, "-m",
                             "ansible_collections.tlsops.haproxy_acme.plugins.modules.acme_stateless_order",
                             str(args_file)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_files(directory: Path, count: int, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(list(directory.glob("[!.]*.pem"))) < count:
        assert proc.poll() is None and time.monotonic() < deadline, "the batch ended before the outage"
        time.sleep(0.02)


def test_a_ca_stopped_mid_batch_fails_the_rest_in_bounded_time(
        make_lab: t.Callable[..., Lab], cert_dir: Path, tmp_path: Path) -> None:
    lab = make_lab()
    assert lab.info is not None
    keep = batch("keep", 5)
    first = run_module("acme_stateless_order", acme_args(lab.info, cert_dir, certificates=keep), tmp_path)
    all_issued(first, 5)
    before = {c["name"]: Path(c["path"]).read_bytes() for c in first["certificates"]}
    certificates = batch("c", 100) + keep  # the kept ones last: the outage hits them
    # request_timeout 3: a request gives up after 6 s, and so does the batch as a whole.
    proc = start_module(acme_args(lab.info, cert_dir, request_timeout=3, force=True, certificates=certificates),
                        tmp_path)
    wait_for_files(cert_dir, 5 + 10, proc)
    lab.stop_pebble()
    stopped = time.monotonic()
    out, err = proc.communicate(timeout=120)
    gave_up = time.monotonic() - stopped
    assert "Traceback" not in out + err, out + err
    result = json.loads(out)
    assert gave_up < 6 + 3 + 5, gave_up  # one budget, one request in flight, start-up and slack
    failed = [c for c in result["certificates"] if c["action"] == "failed"]
    assert len(failed) >= 80
    causes = {UNREACHABLE.search(c["msg"]).groups() if UNREACHABLE.search(c["msg"]) else c["msg"] for c in failed}
    assert len(causes) == 1, causes
    (server, _since, cause), = causes
    assert server == lab.info.acme_directory and cause in ("connection refused", "connection reset",
                                                           "the connection closed without a reply")
    assert result["msg"].count("unreachable since") == 1, result["msg"]
    assert result["msg"].startswith(f"{len(failed)} of 105 certificates failed: certificates ")
    for entry in failed:
        path = Path(entry["path"])
        assert (path.read_bytes() == before[entry["name"]]) if entry["name"] in before else not path.exists()
    assert no_temp_files(cert_dir)

    lab.start_pebble()  # the CA is back (a fresh pebble: the account is created again)
    again = run_module("acme_stateless_order", acme_args(lab.info, cert_dir, certificates=certificates), tmp_path)
    assert not again.get("failed"), again.get("msg")
    assert sum(c["action"] == "issued" for c in again["certificates"]) == \
        sum(1 for c in failed if c["name"] not in before)


def test_the_host_job_meets_an_outage_the_same_way(make_lab: t.Callable[..., Lab], tmp_path: Path) -> None:
    """The renewal timer's job (Debian's python, no Ansible) runs the same issuer: one budget, one
    message, the served certificate kept."""
    lab = make_lab()
    info = lab.info
    assert info is not None
    tree = tmp_path / "lib" / "ansible_collections" / "tlsops" / "haproxy_acme" / "plugins"
    shutil.copytree(ROOT / "plugins" / "module_utils", tree / "module_utils",
                    ignore=shutil.ignore_patterns("__pycache__"))
    config = {"version": 1, "directory": info.acme_directory, "ca_path": info.acme_ca_path,
              "account_key_path": info.lab_account_key_path, "terms_agreed": True, "request_timeout": 2,
              "certificates": [{"name": f"job{i}.example", "domains": [f"job{i}.example"]} for i in range(10)],
              "cert_dir": info.lab_cert_dir, "crt_list": info.lab_cert_dir, "socket": info.lab_socket}
    path = tmp_path / "renew.json"
    path.write_text(json.dumps(config))
    python = DISTRO_PYTHON if Path(DISTRO_PYTHON).exists() else sys.executable
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(tmp_path / "lib"), "LC_ALL": "C.UTF-8"}
    argv = [python, "-c", "import sys; from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._hostjob "
            "import main; sys.exit(main())", "--config", str(path)]
    first = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert first.returncode == 0, first.stdout + first.stderr
    files = {p.name: p.read_bytes() for p in Path(info.lab_cert_dir).glob("job*.pem")}
    assert len(files) == 10
    lab.stop_pebble()
    started = time.monotonic()
    down = subprocess.run([*argv, "--force"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert time.monotonic() - started < 4 + 2 + 5
    assert down.returncode == 1, down.stdout + down.stderr
    lines = down.stdout.splitlines()
    assert sum(1 for line in lines if ": failed (" in line and "unreachable since" in line) == 10, down.stdout
    assert lines[-1].startswith("10 certificates, 0 renewed, FAILED: 10 of 10 certificates failed: certificates ")
    assert lines[-1].count("unreachable since") == 1
    assert {p.name: p.read_bytes() for p in Path(info.lab_cert_dir).glob("job*.pem")} == files
