# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Cost curves; run it as ``bench/scale [--counts 10,100,1000,10000] [--issue-max 1000]``.

For each count of certificates, on a fresh HAProxy (``crt <dir>/``, admin stats socket),
the wall time and the peak memory (maximum RSS, from ``wait4``) of the module's own
process, started as Ansible starts it (``python -m <module> <args file>``):

* deploy of that many new certificates (``haproxy_runtime_cert``, files written, the
  bundles by path from a staging directory: inline ``pem_content`` costs N^2 in
  Ansible's no_log filter, bench/deploy and docs/large-hosts.md);
* updates: the same paths again with a newer generation of the bundles, by path;
* the same deploy once more, with nothing to do (the idempotent check);
* ``haproxy_runtime_cert_info`` over everything loaded;
* the renewal decision with nothing due (``acme_stateless_order`` over the valid bundles
  the deploy wrote, ``use_ari: false``; its directory is a closed port, so any CA
  request would fail the run): its first run, which builds the directory's index of
  bundle facts, then a run with the index (what every later run costs), then the same
  decision in-process (the module's ``run()`` timed inside a process, without Ansible's
  argument checks and output filtering);
* the host job's no-op (``haproxy-acme-renew`` as the renewal timer runs it, the same
  certificates: nothing due, every one already served), first run and later runs;
* HAProxy's own peak RSS (``VmHWM``) after all of the above;
* issue through the ACME client: ``acme_stateless_order`` against a fresh lab (pebble,
  HAProxy answering HTTP-01) at the module's default concurrency, for counts up to
  ``--issue-max`` (1,000); larger counts print the row as skipped.

Each beside its floor, with the ratio: the bare Runtime API commands on one connection
(new/set/commit/add for new certificates, set/commit for updates, one ``show ssl cert
<file>`` per certificate for the idempotent check, and ``show ssl cert`` before those for
the listing), a process that reads each of the N bundles and parses its leaf (the decision), the
sum of the two (the host job), a fresh HAProxy that loads the same certificates from disk
at start (HAProxy's memory), and ``bench/floor.py``, the minimal sequential RFC 8555 client,
for the same count (issue). Never fails on a time.
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

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._defaults import CONCURRENCY  # noqa: E402
from tests.integration.scale_bundles import bundles as scale_bundles  # noqa: E402
from tests.lab.lab import Lab, free_port  # noqa: E402

MODULES = "ansible_collections.tlsops.haproxy_acme.plugins.modules"
COLLECTIONS = ROOT / "build" / "collections"
CLOSED = f"https://127.0.0.1:{free_port()}/dir"  # nothing listens there
HOSTJOB = ("import sys; from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._hostjob import main; "
           "sys.exit(main())")
PARSE_FLOOR = """
import sys
from pathlib import Path
from cryptography import x509
for path in sorted(Path(sys.argv[1]).glob(sys.argv[2])):
    x509.load_pem_x509_certificate(path.read_bytes()).not_valid_after_utc
"""
# The decision without Ansible's argument checks and output filtering: the module's own
# run() in a process, timed inside it (seconds, then what it decided).
IN_PROCESS = """
import collections, json, sys, time
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import order_run
args = json.loads(open(sys.argv[1]).read())
started = time.perf_counter()
result = order_run.run(args).result
elapsed = time.perf_counter() - started
counts = collections.Counter(c["action"] for c in result["certificates"])
print(f"{elapsed:.4f}", ", ".join(f"{n} {a}" for a, n in sorted(counts.items())))
"""
HAPROXY_RSS = "HAProxy peak RSS after the deploys (VmHWM)"
ISSUE = "issue through the ACME client"


class Cost(t.NamedTuple):
    seconds: float
    rss_mb: float
    note: str


class Row(t.NamedTuple):
    """One cell group of the table. ``unit`` says what the floor and the ratio compare:
    ``s`` the module's seconds with the floor's, ``MB`` the peak RSS with the floor's."""

    seconds: float | None  # the module's process; None: not timed (a memory row) or skipped
    rss_mb: float | None
    floor: float | None  # None: no floor
    note: str
    unit: str = "s"

    @property
    def value(self) -> float | None:
        return self.seconds if self.unit == "s" else self.rss_mb


def timed(cost: Cost, floor: float | None) -> Row:
    return Row(cost.seconds, cost.rss_mb, floor, cost.note)


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


def show_floor(path: str, files: list[str], listing: bool = True) -> float:
    """``show ssl cert`` (the full list, unless ``listing`` is false), then one ``show ssl cert <file>`` each."""
    with deploy.bare_cli(path) as cmd:
        started = time.perf_counter()
        if listing:
            cmd(b"show ssl cert\n")
        for name in files:
            cmd(f"show ssl cert {name}\n".encode())
        return time.perf_counter() - started


def peak_rss(pidfile: Path) -> float:
    """HAProxy's peak RSS (MB): the sum of VmHWM over the processes in its pid file and their
    children. bench/deploy starts it with ``-D`` (daemon, no master), so that is its one process."""
    pids = [int(p) for p in pidfile.read_text().split()]
    children = Path("/proc").glob("[0-9]*/stat")
    for stat in children:
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) in pids:
            pids.append(int(stat.parent.name))
    total = 0
    for pid in dict.fromkeys(pids):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
    return total / 1024


def rss_floor(work: Path, bundles: t.Iterable[tuple[str, bytes]]) -> float:
    """Peak RSS (MB) of a fresh HAProxy that loads these bundles from its crt directory at start."""
    work.mkdir()
    fresh = deploy.Haproxy(work)
    for name, pem in bundles:
        (fresh.certs / name).write_bytes(pem)
    try:
        fresh.start()
        return peak_rss(fresh.pidfile)
    finally:
        fresh.stop()


def measure(count: int, work: Path) -> dict[str, Row]:
    """{what: row} for ``count`` certificates, on one HAProxy (everything but the issue row)."""
    ha = deploy.Haproxy(work)
    names = [f"s{i:05d}" for i in range(count)]
    domains = {n: [f"{n}.bench.example"] for n in names}
    paths = [str(ha.certs / f"{n}.pem") for n in names]
    floor_paths = [str(ha.certs / f"floor-{n}.pem") for n in names]
    floor_domains = [f"f{n}.bench.example" for n in names]
    # Generation 1 is newer than generation 0 (scale_bundles), so the deploy takes it as an update.
    stagings = []
    for generation in (0, 1):
        staging = work / f"staging-g{generation}"
        staging.mkdir()
        for name, pem in zip(names, scale_bundles([domains[n][0] for n in names], generation)):
            (staging / f"{name}.pem").write_bytes(pem)
        stagings.append(staging)
    floor_new, floor_update = (scale_bundles(floor_domains, g) for g in (0, 1))
    key = work / "account.key"
    key.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    def push(staging: Path) -> tuple[Cost, dict[str, t.Any]]:
        return module("haproxy_runtime_cert", {"socket": ha.socket, "certificates": [
            {"path": p, "pem_src": str(staging / f"{n}.pem")} for p, n in zip(paths, names)]}, work)

    rows: dict[str, Row] = {}
    try:
        ha.start()
        floor = deploy.raw_floor(ha.socket, floor_paths, floor_new, str(ha.certs))
        cost, result = push(stagings[0])
        rows["deploy of new certificates"] = timed(cost._replace(note=actions(result["certificates"])), floor)

        floor = deploy.raw_update_floor(ha.socket, floor_paths, floor_update)
        cost, result = push(stagings[1])
        rows["updates (a newer generation, same paths)"] = timed(
            cost._replace(note=actions(result["certificates"])), floor)

        floor = show_floor(ha.socket, paths, listing=False)
        cost, result = push(stagings[1])
        rows["unchanged (idempotent deploy)"] = timed(cost._replace(note=actions(result["certificates"])), floor)

        listing = show_floor(ha.socket, paths + floor_paths)
        cost, result = module("haproxy_runtime_cert_info", {"socket": ha.socket}, work)
        rows["`_info` over everything loaded"] = timed(cost._replace(note=f"{len(result['certificates'])} listed"),
                                                       listing)

        parse, _ = process([sys.executable, "-c", PARSE_FLOOR, str(ha.certs), "s*.pem"], work)
        certificates = [{"name": n, "domains": domains[n]} for n in names]
        order_args = {"directory": CLOSED, "account_key_path": str(key), "cert_dir": str(ha.certs), "use_ari": False,
                      "certificates": certificates}
        # The first run after the bundles were written reads and parses each one and keeps its
        # facts in the directory's index (_index.py); every later run with nothing due reads the index.
        for what in ("renewal decision, nothing due, first run (builds the index)", "renewal decision, nothing due"):
            cost, result = module("acme_stateless_order", order_args, work)
            rows[what] = timed(cost._replace(note=actions(result["certificates"])), parse.seconds)
        args_file = work / "in-process.json"
        args_file.write_text(json.dumps(order_args))
        cost, text = process([sys.executable, "-c", IN_PROCESS, str(args_file)], work)
        seconds, outcome = text.split(maxsplit=1)
        rows["renewal decision in-process (the module's run(), no Ansible)"] = timed(
            cost._replace(seconds=float(seconds), note=outcome.strip()), parse.seconds)

        config = work / "renew.json"
        config.write_text(json.dumps({"version": 1, "directory": CLOSED, "account_key_path": str(key),
                                      "certificates": certificates, "cert_dir": str(ha.certs), "socket": ha.socket,
                                      "use_ari": False, "mode": "0640"}))
        for what in ("host job, nothing due, first run (adds the deploy's facts)", "host job, nothing due"):
            cost, text = process([sys.executable, "-c", HOSTJOB, "--config", str(config)], work)
            rows[what] = timed(cost._replace(note=text.strip().splitlines()[-1]), parse.seconds + listing)

        served = peak_rss(ha.pidfile)
    finally:
        ha.stop()
    # The same certificates HAProxy held at the end (the module's and the floor's, the newer
    # generation), loaded from disk by a fresh process: what holding them costs without the API.
    on_disk = [(Path(p).name, Path(p).read_bytes()) for p in paths]
    on_disk += [(Path(p).name, pem) for p, pem in zip(floor_paths, floor_update)]
    rows[HAPROXY_RSS] = Row(None, served, rss_floor(work / "rss-floor", on_disk),
                            f"its one process (daemon mode, no master); {2 * count} loaded", "MB")
    return rows


def issue(count: int, work: Path) -> tuple[Row, bool]:
    """The issue row on a fresh lab, and whether the module's run went through: the floor first, then the module."""
    names = [f"i{i:05d}.bench.example" for i in range(count)]
    try:
        lab = Lab(work / "lab")
    except RuntimeError as exc:  # no pebble on this machine
        return Row(None, None, None, f"skipped: no lab ({exc})"), True
    with lab as info:
        base = {"directory": info.acme_directory, "ca_path": info.acme_ca_path,
                "account_key_path": info.lab_account_key_path, "terms_agreed": True}
        module("acme_account", base, work)  # registered once, untimed, as bench/run's warm-up
        floor_out = work / "floor-issued"
        floor_out.mkdir()
        floor, _ = process([sys.executable, str(BENCH / "floor.py"), "--directory", info.acme_directory,
                            "--ca-path", info.acme_ca_path, "--account-key", info.lab_account_key_path,
                            "--out", str(floor_out), *(f"floor-{n}" for n in names)], work)
        made = len(list(floor_out.glob("*.pem")))
        cert_dir = work / "issued"
        cert_dir.mkdir()
        try:
            cost, result = module("acme_stateless_order", {
                **base, "cert_dir": str(cert_dir), "certificates": [{"name": n, "domains": [n]} for n in names]},
                work)
        except SystemExit as exc:
            return Row(None, None, floor.seconds, f"FAILED: {str(exc)[:200]}"), False
    note = (f"{actions(result['certificates'])}, concurrency {CONCURRENCY} (the default, as bench/run), "
            f"{result['ca_requests']} CA requests")
    if made != count:  # the floor's own failure: its time is no floor then, and the row says so
        note += f"; the floor made {made} of {count}"
    return timed(cost._replace(note=note), floor.seconds if made == count else None), True


def cells(what: str, count: int, row: Row, previous: tuple[int, Row] | None) -> list[str]:
    unit = row.unit
    if row.seconds is None and row.rss_mb is None:
        process_cell = "skipped" if row.note.startswith("skipped") else "-"
    else:
        process_cell = "-" if row.seconds is None else f"{row.seconds:.3f} s"
    rss = "-" if row.rss_mb is None else f"{row.rss_mb:.0f} MB"
    floor = "-" if row.floor is None else f"{row.floor:.3f} s" if unit == "s" else f"{row.floor:.0f} MB"
    ratio = f"{row.value / row.floor:.1f}x" if row.value is not None and row.floor else "-"
    slope = "-"
    if previous and previous[1].value is not None and row.value is not None:
        added = count - previous[0]
        scale, per = (1000, "ms") if unit == "s" else (1024, "KB")
        slope = f"{(row.value - previous[1].value) / added * scale:.2f} {per}"
        if row.floor is not None and previous[1].floor is not None:
            slope += f" ({(row.floor - previous[1].floor) / added * scale:.2f} {per})"
    return [what, str(count), process_cell, rss, floor, ratio, slope, row.note]


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="10,100,1000", help="certificate counts (default 10,100,1000)")
    parser.add_argument("--issue-max", type=int, default=1000,
                        help="issue from pebble only up to this many certificates; larger counts skip that row "
                             "(default 1000)")
    args = parser.parse_args()
    if shutil.which("haproxy") is None:
        print("bench/scale: haproxy is not installed", file=sys.stderr)
        return 2
    counts = [int(c) for c in args.counts.split(",") if c]
    print(f"{deploy.haproxy_version()}; {os.cpu_count()} CPUs; Python {sys.version.split()[0]}; "
          f"load {os.getloadavg()[0]:.2f}")
    table: dict[str, list[tuple[int, Row]]] = {}
    status = 0
    for count in counts:
        work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
        try:
            rows = measure(count, work)
            time.sleep(0.2)
            if count > args.issue_max:
                rows[ISSUE] = Row(None, None, None, f"skipped: over --issue-max {args.issue_max}")
            else:
                rows[ISSUE], issued = issue(count, work)
                status = status or (0 if issued else 1)
            for what, row in rows.items():
                table.setdefault(what, []).append((count, row))
                _, _, process_cell, rss, floor, ratio, _, note = cells(what, count, row, None)
                print(f"  {count}: {what}: {process_cell}, peak RSS {rss}; floor {floor}; {ratio}; {note}",
                      flush=True)
        finally:
            time.sleep(0.2)
            shutil.rmtree(work, ignore_errors=True)
    print()
    print("| what | certificates | process | peak RSS | floor | ratio | per added certificate (floor) | outcome |")
    print("|---|---|---|---|---|---|---|---|")
    for what, entries in table.items():
        previous: tuple[int, Row] | None = None
        for count, row in entries:
            print("| " + " | ".join(cells(what, count, row, previous)) + " |")
            previous = (count, row)
    print(f"\nload {os.getloadavg()[0]:.2f} at the end. Floors: bare Runtime API commands on one connection "
          "(new certificates: new/set/commit/add; updates: set/commit; idempotent deploy: show ssl cert <file> "
          "for each; listing: show ssl cert, then one per file), a process parsing every bundle's leaf "
          "(decision), both (host job), a fresh HAProxy loading the same certificates from disk at start "
          "(HAProxy's peak RSS, compared in MB), bench/floor.py issuing the same count one after another "
          f"(issue; the module orders {CONCURRENCY} at a time). Per added certificate: the growth from the count "
          "before, divided by the certificates added (start-up costs cancel out).")
    return status


if __name__ == "__main__":
    sys.exit(main())
