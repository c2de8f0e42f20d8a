# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Cost curves; run it as ``bench/scale [--counts 10,100,1000,10000]``.

For each count of certificates, on a fresh HAProxy (``crt <dir>/``, admin stats socket),
the wall time and the peak memory (maximum RSS, from ``wait4``) of the module's own
process, started as Ansible starts it (``python -m <module> <args file>``):

* deploy of that many new certificates (``haproxy_runtime_cert``, files written, the
  bundles by path from a staging directory: inline ``pem_content`` costs N^2 in
  Ansible's no_log filter, bench/deploy and docs/large-hosts.md);
* ``haproxy_runtime_cert_info`` over everything loaded;
* the renewal decision with nothing due (``acme_stateless_order`` over the valid bundles
  the deploy wrote, ``use_ari: false``; its directory is a closed port, so any CA
  request would fail the run);
* the host job's no-op (``haproxy-acme-renew`` as the renewal timer runs it, the same
  certificates: nothing due, every one already served).

Each beside its floor, with the ratio: the bare Runtime API commands on one connection
(new/set/commit/add for the deploy, ``show ssl cert`` and one ``show ssl cert <file>`` per
certificate for the listing), a process that reads every bundle and parses its leaf (the
decision), and the sum of the two (the host job). Never fails on a time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import typing as t
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(BENCH), str(ROOT / "build" / "collections"), str(ROOT)]

import deploy  # noqa: E402  (bench/deploy.py: a throw-away HAProxy, the bare commands, test bundles)

from tests.integration.scale_bundles import bundles as scale_bundles  # noqa: E402
from tests.lab.lab import free_port  # noqa: E402

MODULES = "ansible_collections.tlsops.haproxy_acme.plugins.modules"
COLLECTIONS = ROOT / "build" / "collections"
CLOSED = f"https://127.0.0.1:{free_port()}/dir"  # nothing listens there
HOSTJOB = ("import sys; from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._hostjob import main; "
           "sys.exit(main())")
PARSE_FLOOR = """
import sys
from pathlib import Path
from cryptography import x509
for path in sorted(Path(sys.argv[1]).glob("*.pem")):
    x509.load_pem_x509_certificate(path.read_bytes()).not_valid_after_utc
"""


class Cost(t.NamedTuple):
    seconds: float
    rss_mb: float
    note: str


def process(argv: list[str], work: Path) -> tuple[Cost, str]:
    """Run ``argv`` with the collection on the path; its wall time, maximum RSS and standard output."""
    out, err = work / "stdout", work / "stderr"
    env = {**os.environ, "PYTHONPATH": str(COLLECTIONS)}
    with out.open("wb") as stdout, err.open("wb") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=stdout, stderr=stderr, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = out.read_text(errors="replace")
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv[:4])} exited {proc.returncode}:\n{err.read_text()[-2000:]}")
    return Cost(elapsed, usage.ru_maxrss / 1024, ""), text


def module(name: str, args: dict[str, t.Any], work: Path) -> tuple[Cost, dict[str, t.Any]]:
    args_file = work / f"{name}.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    cost, text = process([sys.executable, "-m", f"{MODULES}.{name}", str(args_file)], work)
    result = json.loads(text)
    if result.get("failed"):
        raise SystemExit(f"{name} failed: {result.get('msg')}")
    return cost, result


def actions(entries: t.Iterable[dict[str, t.Any]]) -> str:
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry["action"]] = counts.get(entry["action"], 0) + 1
    return ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))


def info_floor(path: str, files: list[str]) -> float:
    with deploy.bare_cli(path) as cmd:
        started = time.perf_counter()
        cmd(b"show ssl cert\n")
        for name in files:
            cmd(f"show ssl cert {name}\n".encode())
        return time.perf_counter() - started


def measure(count: int, work: Path) -> dict[str, tuple[Cost, float]]:
    """{what: (cost, floor seconds)} for ``count`` certificates."""
    ha = deploy.Haproxy(work)
    names = [f"s{i:05d}" for i in range(count)]
    domains = {n: [f"{n}.bench.example"] for n in names}
    paths = [str(ha.certs / f"{n}.pem") for n in names]
    bundles = scale_bundles([domains[n][0] for n in names])
    floor_bundles = scale_bundles([f"f{n}.bench.example" for n in names])
    staging = work / "staging"
    staging.mkdir()
    for name, pem in zip(names, bundles):
        (staging / f"{name}.pem").write_bytes(pem)
    key = work / "account.key"
    key.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    rows: dict[str, tuple[Cost, float]] = {}
    try:
        ha.start()
        floor = deploy.raw_floor(ha.socket, [str(ha.certs / f"floor-{n}.pem") for n in names], floor_bundles,
                                 str(ha.certs))
        cost, result = module("haproxy_runtime_cert", {"socket": ha.socket, "certificates": [
            {"path": p, "pem_src": str(staging / f"{n}.pem")} for p, n in zip(paths, names)]}, work)
        rows["deploy of new certificates"] = (cost._replace(note=actions(result["certificates"])), floor)

        listing = info_floor(ha.socket, paths + [str(ha.certs / f"floor-{n}.pem") for n in names])
        cost, result = module("haproxy_runtime_cert_info", {"socket": ha.socket}, work)
        rows["`_info` over everything loaded"] = (cost._replace(note=f"{len(result['certificates'])} listed"), listing)

        parse, _ = process([sys.executable, "-c", PARSE_FLOOR, str(ha.certs)], work)
        certificates = [{"name": n, "domains": domains[n]} for n in names]
        cost, result = module("acme_stateless_order", {
            "directory": CLOSED, "account_key_path": str(key), "cert_dir": str(ha.certs), "use_ari": False,
            "certificates": certificates}, work)
        rows["renewal decision, nothing due"] = (cost._replace(note=actions(result["certificates"])), parse.seconds)

        config = work / "renew.json"
        config.write_text(json.dumps({"version": 1, "directory": CLOSED, "account_key_path": str(key),
                                      "certificates": certificates, "cert_dir": str(ha.certs), "socket": ha.socket,
                                      "use_ari": False, "mode": "0640"}))
        cost, text = process([sys.executable, "-c", HOSTJOB, "--config", str(config)], work)
        rows["host job, nothing due"] = (cost._replace(note=text.strip().splitlines()[-1]), parse.seconds + listing)
    finally:
        ha.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="10,100,1000", help="certificate counts (default 10,100,1000)")
    args = parser.parse_args()
    if shutil.which("haproxy") is None:
        print("bench/scale: haproxy is not installed", file=sys.stderr)
        return 2
    counts = [int(c) for c in args.counts.split(",") if c]
    print(f"{deploy.haproxy_version()}; {os.cpu_count()} CPUs; Python {sys.version.split()[0]}; "
          f"load {os.getloadavg()[0]:.2f}")
    table: dict[str, list[tuple[int, Cost, float]]] = {}
    for count in counts:
        work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
        try:
            for what, (cost, floor) in measure(count, work).items():
                table.setdefault(what, []).append((count, cost, floor))
                print(f"  {count}: {what}: {cost.seconds:.3f} s, peak RSS {cost.rss_mb:.0f} MB; floor {floor:.3f} s;"
                      f" {cost.note}", flush=True)
        finally:
            time.sleep(0.2)
            shutil.rmtree(work, ignore_errors=True)
    print()
    print("| what | certificates | process | peak RSS | floor | ratio | per added certificate (floor) | outcome |")
    print("|---|---|---|---|---|---|---|---|")
    for what, rows in table.items():
        previous: tuple[int, Cost, float] | None = None
        for count, cost, floor in rows:
            slope = "-"
            if previous:
                added = count - previous[0]
                slope = (f"{(cost.seconds - previous[1].seconds) / added * 1000:.2f} ms "
                         f"({(floor - previous[2]) / added * 1000:.2f} ms)")
            print(f"| {what} | {count} | {cost.seconds:.3f} s | {cost.rss_mb:.0f} MB | {floor:.3f} s | "
                  f"{cost.seconds / floor:.1f}x | {slope} | {cost.note} |")
            previous = (count, cost, floor)
    print(f"\nload {os.getloadavg()[0]:.2f} at the end. Floors: bare Runtime API commands on one connection "
          "(deploy: new/set/commit/add; listing: show ssl cert, then one per file), a process parsing every "
          "bundle's leaf (decision), both (host job). Per added certificate: the growth from the count before, "
          "divided by the certificates added (start-up costs cancel out).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
