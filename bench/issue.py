# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Issuance benchmark of acme_stateless_order on a fresh lab (issue 2); run it as ``bench/issue``.

Prints figures; never fails on a time.

Measures, each as the wall time of the module's own process (Python start-up, imports and
the ACME exchange, as on a managed host) unless said otherwise:
  * one certificate (median of 3), and one certificate through a whole ansible-playbook run;
  * 50 certificates in one call at concurrency 1 and at concurrency 8;
  * a no-op run over 50 valid certificates, with use_ari false and true, and the number
    of requests the CA saw (pebble's own log) and our transport counted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import typing as t
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.lab.lab import Lab, LabInfo  # noqa: E402

MODULES = "ansible_collections.tlsops.haproxy_acme.plugins.modules"
COLLECTIONS = ROOT / "build" / "collections"
BASELINE = """\
peers (certbot, lego, community.crypto) and the protocol floor, measured in the same run: bench/run
goals: one certificate < 0.3 s module time; 50 in one call < 3 s; no-op over 50 < 0.5 s and no CA request"""


def ca_requests_seen(info: LabInfo) -> int:
    """ACME requests pebble handled so far, from its own log."""
    text = Path(info.dir, "pebble.log").read_text(errors="replace")
    return sum(1 for line in text.splitlines() if "-> calling handler()" in line)


# Runs the module as ``python -m`` would, noting when its imports are done and when it exits.
WRAPPER = """
import importlib, sys, time
started = time.perf_counter()
module = importlib.import_module(sys.argv[1])
imported = time.perf_counter()
sys.argv = [sys.argv[0]] + sys.argv[2:]
try:
    module.main()
finally:
    sys.stderr.write("BENCH %.6f %.6f\\n" % (imported - started, time.perf_counter() - imported))
"""


class Timing(t.NamedTuple):
    process: float  # wall time of the whole process
    imports: float  # of which: importing the module (ansible.module_utils.basic, cryptography, ours)
    work: float  # of which: the module's own run (arguments, files, the ACME exchange)


def run_module(module: str, args: dict[str, t.Any], work: Path) -> tuple[Timing, dict[str, t.Any]]:
    args_file = work / f"args-{time.monotonic_ns()}.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = {**os.environ, "PYTHONPATH": str(COLLECTIONS)}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", WRAPPER, f"{MODULES}.{module}", str(args_file)],
                          capture_output=True, text=True, env=env, check=False, timeout=600)
    elapsed = time.perf_counter() - started
    result = json.loads(proc.stdout)
    if result.get("failed"):
        raise SystemExit(f"{module} failed: {result.get('msg')}")
    marks = [line.split() for line in proc.stderr.splitlines() if line.startswith("BENCH ")][-1]
    return Timing(elapsed, float(marks[1]), float(marks[2])), result


def run_playbook(args: dict[str, t.Any], work: Path, module: str = "acme_stateless_order") -> float:
    """Wall time of a whole ansible-playbook run of one task of ours on localhost."""
    play = work / "one.yml"
    play.write_text(json.dumps([{
        "hosts": "localhost", "gather_facts": False,
        "vars": {"ansible_python_interpreter": sys.executable},
        "tasks": [{"name": f"One {module} task", f"tlsops.haproxy_acme.{module}": args}],
    }]))
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "ANSIBLE_LOCALHOST_WARNING": "false",
           "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"}
    started = time.perf_counter()
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           str(play)], capture_output=True, text=True, env=env, check=False, timeout=600)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"ansible-playbook failed:\n{proc.stdout[-3000:]}")
    return elapsed


def batch(prefix: str, count: int) -> list[dict[str, t.Any]]:
    return [{"name": f"{prefix}{i:02d}", "domains": [f"{prefix}{i:02d}.bench.example"]} for i in range(count)]


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-issue-"))
    try:
        measure(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(BASELINE)
    return 0


def measure(work: Path) -> None:
    with Lab(work / "lab") as info:
        certs = work / "certs"
        certs.mkdir()
        base = {"directory": info.acme_directory, "ca_path": info.acme_ca_path,
                "account_key_path": info.lab_account_key_path, "terms_agreed": True, "cert_dir": str(certs)}
        run_module("acme_account", {k: base[k] for k in ("directory", "ca_path", "account_key_path", "terms_agreed")},
                   work)
        print(f"lab: pebble 2.4 (nonce reject 0%, authz reuse 0%), HAProxy answering HTTP-01; load {os.getloadavg()[0]:.2f}")

        singles = []
        for i in range(5):
            timing, result = run_module("acme_stateless_order", {**base, "domains": [f"one{i}.bench.example"]}, work)
            singles.append(timing)
        middle = sorted(singles, key=lambda x: x.process)[2]
        print(f"one certificate, module process:        {middle.process:6.3f} s (median of 5: "
              f"{middle.imports:.3f} s start-up imports, {middle.work:.3f} s module run incl. "
              f"{result['ca_requests']} CA requests; all: {', '.join(f'{x.process:.3f}' for x in singles)})")
        print(f"one certificate, whole ansible-playbook: {run_playbook({**base, 'domains': ['play.bench.example']}, work):6.3f} s")

        for concurrency in (1, 8):
            args = {**base, "concurrency": concurrency, "certificates": batch(f"c{concurrency}x", 50)}
            timing, result = run_module("acme_stateless_order", args, work)
            issued = sum(1 for c in result["certificates"] if c["action"] == "issued")
            print(f"50 certificates, concurrency {concurrency}:         {timing.process:6.3f} s "
                  f"(module run {timing.work:.3f} s; {issued} issued, {result['ca_requests']} CA requests)")

        for use_ari in (False, True):
            args = {**base, "concurrency": 8, "use_ari": use_ari, "certificates": batch("c8x", 50)}
            seen = ca_requests_seen(info)
            timing, result = run_module("acme_stateless_order", args, work)
            unchanged = sum(1 for c in result["certificates"] if c["action"] == "unchanged")
            print(f"no-op over 50 valid, use_ari={str(use_ari).lower():5}:    {timing.process:6.3f} s "
                  f"(module run {timing.work:.3f} s; "
                  f"{unchanged} unchanged; CA requests: {ca_requests_seen(info) - seen} in pebble's log, "
                  f"{result['ca_requests']} counted by the client)")


if __name__ == "__main__":
    sys.exit(main())
