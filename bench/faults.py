# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""acme_stateless_order under faults, on fresh labs; run it as ``bench/faults [--quick]``.

Prints figures; never fails on a time. Each run is the module's own process, as on a
managed host, with default settings unless said otherwise (request_timeout 10, so each
request and the batch as a whole give up after 20 s; concurrency 4):

  * a CA stopped in the middle of a batch of 10, 100 and 1,000 certificates: the time from
    the stop to the module's exit, how many failed, and how many distinct messages;
  * how many certificates of a batch come through when pebble rejects 30, 50 and 70 % of
    good nonces, and through the lab's fault proxy (tests/lab/faultproxy.py) answering 30 %
    of requests 503 + Retry-After: 1, resetting 20 % of connections before it forwards them
    or after pebble answered them;
  * requests and wall time under a storm of 429 + Retry-After: 2 on 30 % of requests,
    beside the same batch without faults.

``--quick`` runs small batches (the outage with request_timeout 2, so a 4 s bound) in
about a minute, most of it the shared Retry-After pauses of the 503 and 429 storms.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import typing as t
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.lab.lab import Lab, LabInfo, count_orders  # noqa: E402

MODULE = "ansible_collections.tlsops.haproxy_acme.plugins.modules.acme_stateless_order"
COLLECTIONS = ROOT / "build" / "collections"
UNREACHABLE = re.compile(r"unreachable since \S+: .*")
BASELINE = """\
before this work (same lab, figures from the issue):
  CA stopped mid-batch of 120 (concurrency 4, request_timeout 5)   501 s to give up
  rejected nonces, batch of 20                                     one lost ("gave up after 10 rejected nonces")
  30 % 503 + Retry-After: 1, batch of 20                           1 to 4 lost, after ~3-4 s of retries each
  20 % resets after forwarding, batch of 20                        4 to 11 lost ("Cannot update challenge ...",
                                                                   "orderNotReady ...")
goals: an outage costs one time bound (20 s by default) whatever the batch size; every certificate through
every storm, within the time bound"""


def batch(prefix: str, count: int) -> list[dict[str, t.Any]]:
    return [{"name": f"{prefix}{i:04d}", "domains": [f"{prefix}{i:04d}.bench.example"]} for i in range(count)]


def module_args(info: LabInfo, cert_dir: Path, **extra: t.Any) -> dict[str, t.Any]:
    return {"directory": info.acme_directory, "ca_path": info.acme_ca_path, "account_key_path": info.lab_account_key_path,
            "terms_agreed": True, "cert_dir": str(cert_dir), **extra}


def start(args: dict[str, t.Any], work: Path) -> subprocess.Popen[str]:
    args_file = work / f"args-{time.monotonic_ns()}.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = {**os.environ, "PYTHONPATH": str(COLLECTIONS)}
    return subprocess.Popen([sys.executable, "-m", MODULE, str(args_file)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def finish(proc: subprocess.Popen[str]) -> dict[str, t.Any]:
    out, err = proc.communicate(timeout=1800)
    if not out.strip():
        raise SystemExit(f"the module printed nothing:\n{err[-3000:]}")
    return t.cast(dict[str, t.Any], json.loads(out))


def run(args: dict[str, t.Any], work: Path) -> tuple[float, dict[str, t.Any]]:
    started = time.perf_counter()
    result = finish(start(args, work))
    return time.perf_counter() - started, result


def fresh_dir(work: Path, name: str) -> Path:
    path = work / name
    path.mkdir()
    return path


def tally(result: dict[str, t.Any]) -> tuple[int, int]:
    entries = result["certificates"]
    return sum(1 for c in entries if c["action"] in ("issued", "renewed")), len(entries)


def first_failure(result: dict[str, t.Any]) -> str:
    msg = next((c.get("msg") for c in result["certificates"] if c["action"] == "failed"), None)
    return f"; first failure: {msg}" if msg else ""


# ------------------------------------------------------------------ an outage


def outage(work: Path, sizes: t.Sequence[int], request_timeout: float | None) -> None:
    bound = 2 * (request_timeout or 10)
    setting = "default settings" if request_timeout is None else f"request_timeout {request_timeout:g}"
    print(f"CA stopped mid-batch ({setting}: each request, and the batch, gives up after {bound:g} s; concurrency 4)")
    lab = Lab(work / "lab-outage")
    info = lab.start()
    try:
        for size in sizes:
            cert_dir = fresh_dir(work, f"outage-{size}")
            extra = {} if request_timeout is None else {"request_timeout": request_timeout}
            started = time.perf_counter()
            proc = start(module_args(info, cert_dir, certificates=batch("o", size), **extra), work)
            before = min(3, max(1, size // 3))
            while len(list(cert_dir.glob("[!.]*.pem"))) < before and proc.poll() is None:
                time.sleep(0.01)
            lab.stop_pebble()
            stopped = time.perf_counter()
            result = finish(proc)
            ended = time.perf_counter()
            issued, _ = tally(result)
            failed = [c for c in result["certificates"] if c["action"] == "failed"]
            messages = {UNREACHABLE.search(c["msg"]).group(0) if UNREACHABLE.search(c["msg"]) else c["msg"]
                        for c in failed}
            print(f"  {size:5d} certificates: gave up {ended - stopped:5.1f} s after the stop "
                  f"(whole run {ended - started:5.1f} s); {issued} issued before it, {len(failed)} failed, "
                  f"{len(messages)} distinct message{'s' if len(messages) != 1 else ''}, "
                  f"{result['ca_requests']} requests in all")
            for message in sorted(messages)[:2]:
                print(f"        {message}")
            lab.start_pebble()
    finally:
        lab.stop()


# ------------------------------------------------------------------ storms


def nonce_storms(work: Path, size: int, shares: t.Sequence[int]) -> None:
    print(f"rejected nonces (pebble's PEBBLE_WFE_NONCEREJECT), batch of {size}, concurrency 4")
    for share in shares:
        with Lab(work / f"lab-nonce-{share}", nonce_reject=share) as info:
            cert_dir = fresh_dir(work, f"nonce-{share}")
            elapsed, result = run(module_args(info, cert_dir, certificates=batch("n", size)), work)
            issued, total = tally(result)
            print(f"  {share:3d} % rejected: {issued:4d} of {total} issued in {elapsed:5.1f} s, "
                  f"{result['ca_requests']} requests{first_failure(result)}")


def proxy_storms(work: Path, size: int, quick: bool = False) -> None:
    print(f"through the fault proxy, batch of {size}, concurrency 4")
    lab = Lab(work / "lab-proxy")
    info = lab.start()
    try:
        proxy = lab.fault_proxy()
        cases: list[tuple[str, dict[str, t.Any], dict[str, t.Any]]] = [
            ("no faults", {}, {}),
            ("30 % 503 + Retry-After: 1", {"unavailable": 0.3, "status": 503, "retry_after": "1"}, {}),
            ("30 % 503 + Retry-After: 1, concurrency 8", {"unavailable": 0.3, "status": 503, "retry_after": "1"},
             {"concurrency": 8}),
            ("20 % reset before forwarding", {"reset_before": 0.2}, {}),
            ("20 % reset after pebble answered", {"reset_after": 0.2}, {}),
            ("30 % 429 + Retry-After: 2", {"unavailable": 0.3, "status": 429, "retry_after": "2"}, {}),
        ]
        if quick:
            cases = [case for case in cases if "concurrency" not in case[2]]
        for label, faults, extra in cases:
            proxy.set(seed=11, **faults)
            proxy.reset_counts()
            orders = count_orders(lab.pebble_log())
            cert_dir = fresh_dir(work, f"proxy-{len(list(work.iterdir()))}")
            args = {**module_args(info, cert_dir, certificates=batch("p", size), **extra), "directory": proxy.directory}
            elapsed, result = run(args, work)
            issued, total = tally(result)
            injected = sum(proxy.counts[k] for k in ("unavailable", "reset_before", "reset_after", "truncate"))
            print(f"  {label:42s} {issued:4d} of {total} issued in {elapsed:5.1f} s; requests: "
                  f"{proxy.counts['requests']} at the proxy ({injected} faulted), {result['ca_requests']} by the client; "
                  f"{count_orders(lab.pebble_log()) - orders} orders{first_failure(result)}")
    finally:
        lab.stop()


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small batches, a 4 s bound for the outage")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    started = time.perf_counter()
    try:
        version = ".".join(str(part) for part in Lab(work / "probe").pebble_version)
        print(f"lab: pebble {version}, HAProxy answering HTTP-01; "
              f"load {os.getloadavg()[0]:.2f}{'; --quick' if args.quick else ''}")
        if args.quick:
            outage(work, (10, 50), request_timeout=2)
            nonce_storms(work, 3, (30, 50, 70))
            proxy_storms(work, 3, quick=True)
        else:
            outage(work, (10, 100, 1000), request_timeout=None)
            nonce_storms(work, 20, (30, 50, 70))
            proxy_storms(work, 20)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"bench/faults took {time.perf_counter() - started:.0f} s")
    print(BASELINE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
