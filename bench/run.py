# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every benchmark on the lab, peers measured in the same run; run it as ``bench/run`` (``make bench``).

Writes one Markdown report, ``bench/out/report.md`` (``--out``), and prints it:

* issuance of 1, 10 and 50 certificates by this collection (one ``acme_stateless_order``
  task in a whole ansible-playbook run, and the module's own process), by certbot
  (PyPI, its own virtualenv, ``--standalone``), by lego (Debian), by community.crypto's
  ``acme_certificate`` loop (PyPI's ``ansible`` package, its own virtualenv) and by the
  protocol floor (``bench/floor.py``); each the wall time of whole processes, the median
  of ``--runs`` (3), each beside this collection's figure with the ratio;
* a deploy of 100 new certificates: ``haproxy_runtime_cert`` (playbook and module
  process), HAProxy's own floor (the bare Runtime API commands on one connection) and a
  plain reload of a master-worker HAProxy (``haproxy -c``, then ``kill -USR2`` as
  Debian's unit does, until the new worker answers on its stats socket);
* ``bench/scale``'s cost curves; with ``--all`` (``make bench``) also ``bench/faults
  --quick`` and ``bench/fleet`` (booted nodes), their output as printed.

Peers come from the package registries (pip, apt) on first use; one that cannot be
installed is reported as skipped. acme.sh comes from no registry: its figures are
quoted, and marked so. Never fails on a time.

``--smoke`` (the test in tests/integration/test_bench_smoke.py): one certificate, one
run, this collection, the floor and lego only, a deploy of 5, cost curves for 5.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(BENCH), str(ROOT / "build" / "collections"), str(ROOT)]

import deploy  # noqa: E402  (bench/deploy.py: the HAProxy config, its floor, test bundles)
import issue  # noqa: E402  (bench/issue.py: the module and playbook runners)
from peers import Target, Unavailable, certbot, crypto, lego  # noqa: E402
from peers import run as run_process  # noqa: E402

from tests.lab.lab import Lab, LabInfo, free_port  # noqa: E402

PEERS = {"certbot": certbot, "lego": lego, "community.crypto": crypto}
QUOTED_NAME = "acme.sh 3.1"
QUOTED_FIGURES = {1: 6.47, 10: 64.6}  # seconds for 1 and 10 certificates
QUOTED_SOURCE = "quoted from the project's issue tracker, 2026 (issue 13; not measured in this run)"
OURS, MODULE, FLOOR = "this collection", "module process", "floor (bench/floor.py)"


@dataclass
class Figure:
    runs: list[float] = field(default_factory=list)
    error: str | None = None
    projected: float | None = None  # not run: this many seconds projected from the smaller batches

    @property
    def median(self) -> float | None:
        return statistics.median(self.runs) if self.runs else None


class Ours:
    """One acme_stateless_order task in a whole ansible-playbook run, as users run it."""

    def __init__(self, info: LabInfo, work: Path) -> None:
        self.work = work
        self.base = {"directory": info.acme_directory, "ca_path": info.acme_ca_path,
                     "account_key_path": info.lab_account_key_path, "terms_agreed": True,
                     "cert_dir": str(work / "ours-certs")}
        (work / "ours-certs").mkdir(exist_ok=True)

    def args(self, names: t.Sequence[str]) -> dict[str, t.Any]:
        return {**self.base, "certificates": [{"name": n, "domains": [n]} for n in names]}

    def warm(self) -> None:
        issue.run_module("acme_account", {k: self.base[k] for k in ("directory", "ca_path", "account_key_path",
                                                                    "terms_agreed")}, self.work)

    def issue(self, names: t.Sequence[str]) -> float:
        return issue.run_playbook(self.args(names), self.work)


class Module(Ours):
    """The same task's module as its own process, as Ansible starts it on a host."""

    def warm(self) -> None:
        pass

    def issue(self, names: t.Sequence[str]) -> float:
        return issue.run_module("acme_stateless_order", self.args(names), self.work)[0].process


class Floor:
    def __init__(self, info: LabInfo, work: Path) -> None:
        self.info = info
        self.out = work / "floor-certs"
        self.out.mkdir()

    def warm(self) -> None:
        self.issue(["warm-floor.bench.example"])

    def issue(self, names: t.Sequence[str]) -> float:
        return run_process([sys.executable, str(BENCH / "floor.py"), "--directory", self.info.acme_directory,
                            "--ca-path", self.info.acme_ca_path, "--account-key", self.info.lab_account_key_path,
                            "--out", str(self.out), *names])


# ------------------------------------------------------------------ deploys


class MasterWorker:
    """HAProxy as Debian's unit runs it (master-worker), reloaded the way its ExecReload does."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir()
        self.certs = directory / "certs"
        self.certs.mkdir()
        self.socket = str(directory / "admin.sock")
        self.cfg = directory / "haproxy.cfg"
        self.cfg.write_text(deploy.CONFIG.format(socket=self.socket, port=deploy.free_port(), certs=self.certs))
        self.proc = subprocess.Popen(["haproxy", "-W", "-db", "-f", str(self.cfg)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 15
        while self.worker_pid() is None:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("HAProxy (master-worker) did not answer on its stats socket")
            time.sleep(0.01)

    def worker_pid(self) -> int | None:
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(2)
                sock.connect(self.socket)
                sock.sendall(b"show info\n")
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
        except OSError:
            return None
        for line in data.decode(errors="replace").splitlines():
            if line.startswith("Pid:"):
                return int(line.split(":", 1)[1])
        return None

    def reload(self) -> float:
        """``haproxy -c`` then USR2 to the master, until a new worker answers: the whole reload."""
        old = self.worker_pid()
        started = time.perf_counter()
        subprocess.run(["haproxy", "-c", "-q", "-f", str(self.cfg)], check=True)
        os.kill(self.proc.pid, signal.SIGUSR2)
        deadline = time.monotonic() + 60
        while self.worker_pid() in (old, None):
            if time.monotonic() > deadline:
                raise RuntimeError("no new HAProxy worker within 60 s of the reload")
            time.sleep(0.005)
        return time.perf_counter() - started

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


def push_args(ha: MasterWorker, tag: str, count: int) -> dict[str, t.Any]:
    items = [{"path": str(ha.certs / f"{tag}{i:03d}.pem"),
              "pem_content": deploy.bundle([f"{tag}{i:03d}.bench.example"]).decode()} for i in range(count)]
    return {"socket": ha.socket, "certificates": items}


def measure_deploys(work: Path, count: int, runs: int) -> dict[str, Figure]:
    figures = {name: Figure() for name in (OURS, MODULE, "HAProxy floor (bare commands)", "HAProxy reload")}
    for index in range(runs):
        ha = MasterWorker(work / f"deploy-{index}")
        try:
            floor = push_args(ha, f"f{index}x", count)
            names = [str(Path(c["path"]).name) for c in floor["certificates"]]
            bundles = [c["pem_content"].encode() for c in floor["certificates"]]
            figures["HAProxy floor (bare commands)"].runs.append(
                deploy.raw_floor(ha.socket, [str(ha.certs / n) for n in names], bundles, str(ha.certs)))
            figures[OURS].runs.append(issue.run_playbook(push_args(ha, f"p{index}x", count), work, "haproxy_runtime_cert"))
            module = issue.run_module("haproxy_runtime_cert", push_args(ha, f"m{index}x", count), work)[0]
            figures[MODULE].runs.append(module.process)
            figures["HAProxy reload"].runs.append(ha.reload())
        finally:
            ha.stop()
    return figures


# ------------------------------------------------------------------ issuance


def names(tool: str, size: int, index: int) -> list[str]:
    slug = "".join(c for c in tool.lower() if c.isalnum())[:10]
    return [f"{slug}-{size}-{index}-{i:02d}.bench.example" for i in range(size)]


Progress = t.Callable[[dict[tuple[str, int], Figure], set[tuple[str, int]]], None]


def projection(known: list[tuple[int, float | None]], size: int) -> float:
    """Seconds a batch of ``size`` would take, from (size, seconds) measured: 0 when nothing is."""
    points = sorted((s, m) for s, m in known if m)
    if not points:
        return 0.0
    if len(points) == 1:
        return points[0][1] / points[0][0] * size
    (s1, m1), (s2, m2) = points[-2], points[-1]
    return m2 + max(m2 - m1, 0.0) / (s2 - s1) * (size - s2)


def measure_issuance(tools: dict[str, t.Any], sizes: t.Sequence[int], args: argparse.Namespace,
                     log: t.Callable[[str], None],
                     progress: Progress) -> tuple[dict[tuple[str, int], Figure], set[tuple[str, int]]]:
    """Medians per (tool, size); runs interleaved, so that each tool sees the same load.

    A tool whose first run of a batch took longer than ``--once-over`` runs it once; a tool
    projected slower than ``--skip-over`` does not run it at all (the report says so). The
    projection is linear: through the two largest batches measured, or from the one."""
    runs = args.runs
    figures = {(tool, size): Figure() for tool in tools for size in sizes}
    once: set[tuple[str, int]] = set()
    for size in sizes:
        planned = {}
        for tool in tools:
            projected = projection([(s, f.median) for (name, s), f in figures.items()
                                    if name == tool and f.median], size)
            planned[tool] = runs
            if projected > args.skip_over:
                planned[tool] = 0
                figures[(tool, size)].projected = projected
        for index in range(max(planned.values(), default=0)):
            for tool, peer in tools.items():
                figure = figures[(tool, size)]
                if index >= planned[tool] or figure.error:
                    continue
                try:
                    figure.runs.append(peer.issue(names(tool, size, index)))
                    log(f"  {tool:<22} {size:3d} certificates, run {index + 1}: {figure.runs[-1]:7.2f} s")
                except (RuntimeError, subprocess.TimeoutExpired, SystemExit) as exc:
                    figure.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    log(f"  {tool:<22} {size:3d} certificates: FAILED: {exc}")
                if index == 0 and runs > 1 and figure.runs and figure.runs[0] > args.once_over:
                    planned[tool] = 1
                    once.add((tool, size))
        progress(figures, once)
    return figures, once


# ------------------------------------------------------------------ report


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s" if value < 100 else f"{value:.0f} s"


def cell(figure: Figure | None, reference: float | None, mark: str = "") -> str:
    if figure is None:
        return "-"
    if figure.error:
        return f"failed ({figure.error[:60]})"
    if figure.projected:
        return f"not run (~{figure.projected:.0f} s projected)"
    value = figure.median
    if value is None:
        return "-"
    return f"{seconds(value)}{ratio(value, reference)}{mark}"


def ratio(value: float | None, reference: float | None) -> str:
    if not value or not reference:
        return ""
    times = value / reference
    return f" ({times:.1f}x)" if times >= 1 else f" ({times:.2f}x)"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def versions(installed: dict[str, str]) -> list[str]:
    def first_line(argv: list[str]) -> str:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        return (proc.stdout or proc.stderr).splitlines()[0].strip() if (proc.stdout or proc.stderr) else "unknown"

    galaxy = (ROOT / "galaxy.yml").read_text()
    ours = next((line.split(":", 1)[1].strip() for line in galaxy.splitlines() if line.startswith("version:")), "?")
    lines = [f"- tlsops.haproxy_acme {ours} (this checkout, {first_line(['git', '-C', str(ROOT), 'rev-parse', '--short', 'HEAD'])}),"
             f" {first_line([str(Path(sys.executable).parent / 'ansible-playbook'), '--version'])}, Python {sys.version.split()[0]}",
             f"- {first_line(['haproxy', '-v'])}",
             f"- pebble: {first_line(['dpkg-query', '-W', '-f', '${Package} ${Version}', 'pebble'])}"
             " (PEBBLE_VA_NOSLEEP=1, no nonce rejection, no authorization reuse)"]
    lines += [f"- {name}: {text}" for name, text in installed.items()]
    return lines


def install(wanted: t.Sequence[str], log: t.Callable[[str], None]) -> tuple[dict[str, str], dict[str, str]]:
    """({peer: version}, {peer: why skipped})."""
    installed: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for name in wanted:
        try:
            installed[name] = PEERS[name].install()
        except Unavailable as exc:
            skipped[name] = str(exc)
        log(f"{name}: {installed.get(name) or 'skipped: ' + skipped[name]}")
    return installed, skipped


@dataclass
class Results:
    tools: list[str]
    issued: dict[tuple[str, int], Figure]
    once: set[tuple[str, int]]
    deploys: dict[str, Figure]
    outputs: list[tuple[str, int, str]]


def issuance(args: argparse.Namespace, installed: dict[str, str], skipped: dict[str, str], work: Path,
             log: t.Callable[[str], None], *,
             progress: t.Callable[[list[str]], Progress],
             ) -> tuple[list[str], dict[tuple[str, int], Figure], set[tuple[str, int]]]:
    sizes = [int(s) for s in args.sizes.split(",") if s]
    port = free_port()
    with Lab(work / "ours-lab") as ours_lab, Lab(work / "peers-lab", haproxy=False, validation_port=port) as peer_lab:
        target = Target(peer_lab.acme_directory, peer_lab.acme_ca_path, port)
        tools: dict[str, t.Any] = {OURS: Ours(ours_lab, work), MODULE: Module(ours_lab, work),
                                   FLOOR: Floor(ours_lab, work)}
        for name in installed:
            module = PEERS[name]
            tools[name] = (module.Peer(target, work, peer_lab.lab_account_key_path) if module is crypto
                           else module.Peer(target, work))
        for name, tool in list(tools.items()):
            try:
                tool.warm()
            except (RuntimeError, SystemExit) as exc:
                skipped[name] = f"its first (untimed) certificate failed: {str(exc).splitlines()[-1]}"
                log(f"{name}: skipped: {skipped[name]}")
                installed.pop(name, None)
                tools.pop(name)
        log(f"issuance ({', '.join(tools)}), load {os.getloadavg()[0]:.2f}:")
        issued, once = measure_issuance(tools, sizes, args, log, progress(list(tools)))
    return list(tools), issued, once


def others(args: argparse.Namespace, log: t.Callable[[str], None]) -> list[tuple[str, int, str]]:
    """The other benchmarks' output as printed: (title, exit status, text)."""
    scale = [sys.executable, str(BENCH / "scale.py"), *(["--counts", "5"] if args.smoke else [])]
    extra = [("bench/scale" + (" --counts 5" if args.smoke else ""), scale)]
    if args.all:
        extra += [("bench/faults --quick", [str(BENCH / "faults"), "--quick"]), ("bench/fleet", [str(BENCH / "fleet"), "--name", f"bench-run-{os.getpid()}"])]
    outputs = []
    for title, argv in extra:
        log(f"{title}, load {os.getloadavg()[0]:.2f} ...")
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        outputs.append((title, proc.returncode, proc.stdout + (proc.stderr if proc.returncode else "")))
    return outputs


def issuance_table(args: argparse.Namespace, results: Results) -> list[str]:
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rows = []
    for size in sizes:
        reference = results.issued[(OURS, size)].median
        row = [str(size)]
        for tool in results.tools:
            mark = " (1 run)" if (tool, size) in results.once else ""
            row.append(cell(results.issued[(tool, size)], None if tool == OURS else reference, mark))
        quoted = QUOTED_FIGURES.get(size)
        row.append(f"{seconds(quoted)}{ratio(quoted, reference)}")
        rows.append(row)
    lines = table(["certificates", *results.tools, QUOTED_NAME + " (quoted)"], rows)
    lines += ["", f"{QUOTED_NAME}: {QUOTED_SOURCE}."]
    if results.once:
        lines.append(f"(1 run): the first run took over {args.once_over:.0f} s, so it ran once, "
                     "not the median of several.")
    if any(f.projected for f in results.issued.values()):
        lines.append(f"not run: projected over {args.skip_over:.0f} s (linearly, from the smaller batches).")
    return lines


def write_report(args: argparse.Namespace, results: Results, installed: dict[str, str], skipped: dict[str, str], *,
                 load: tuple[tuple[float, ...], tuple[float, ...]], elapsed: float) -> list[str]:
    report = [f"# Benchmarks, {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC", "",
              f"`bench/run{' --smoke' if args.smoke else ''}` on {os.cpu_count()} CPUs, shared; "
              f"load average (1, 5, 15 min) before {' '.join(f'{x:.2f}' for x in load[0])}, "
              f"after {' '.join(f'{x:.2f}' for x in load[1])}; {elapsed:.0f} s in all.", "",
              "Versions:", "", *versions(installed)]
    report += [f"- skipped: {name}: {why}" for name, why in skipped.items()]
    report += ["", "## Issuance", "",
               f"Wall time of whole processes, median of {args.runs}; the ratio is to this collection's "
               "whole ansible-playbook run. Each certificate has one name; every tool makes its own key. "
               "certbot and lego run once per certificate, as their users script them; community.crypto "
               "and this collection run one playbook for the batch. One untimed certificate first "
               "registers each tool's account.", ""]
    report += issuance_table(args, results)
    reference = results.deploys[OURS].median
    report += ["", f"## Deploy of {args.deploy} new certificates", "",
               f"Median of {args.runs}, each on a fresh master-worker HAProxy (`crt <dir>/`, admin stats "
               "socket). This collection: one `haproxy_runtime_cert` task (files written, then new/set/commit/"
               "add with checks and read-back) in a whole ansible-playbook run, and the module as its own "
               "process. The floor: the bare Runtime API commands on one connection, in-process, no checks. "
               f"The reload: `haproxy -c`, `kill -USR2` to the master, until a new worker answers, with the "
               f"{args.deploy} certificates on disk; it also ends idle keep-alive connections.", ""]
    report += table(["what", "seconds (ratio to this collection)"],
                    [[name, cell(fig, None if name == OURS else reference)] for name, fig in results.deploys.items()])
    for title, rc, text in results.outputs:
        report += ["", f"## {title}" + (f" (exit {rc})" if rc else ""), "", "```", text.rstrip(), "```"]
    return report


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(BENCH / "out"), help="directory for report.md (default bench/out)")
    parser.add_argument("--sizes", default="1,10,50", help="certificates per issuance batch")
    parser.add_argument("--deploy", type=int, default=100, help="certificates per deploy")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure; the median is reported")
    parser.add_argument("--once-over", type=float, default=90.0,
                        help="a tool whose first run of a batch takes longer than this many seconds runs it once")
    parser.add_argument("--skip-over", type=float, default=900.0,
                        help="a tool projected slower than this many seconds for a size does not run it")
    parser.add_argument("--peers", default=",".join(PEERS), help="which peers (default: all)")
    parser.add_argument("--smoke", action="store_true", help="1 certificate, 1 run, the floor and lego, deploy of 5, curves for 5")
    parser.add_argument("--all", action="store_true", help="also bench/faults --quick and bench/fleet (nodes)")
    args = parser.parse_args()
    # Stopped with SIGTERM, the labs (pebble, HAProxy, in their own sessions) still go down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.smoke:
        args.sizes, args.deploy, args.runs, args.peers = "1", 5, 1, "lego"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-run-"))
    started, load_before = time.perf_counter(), os.getloadavg()

    def log(text: str) -> None:
        print(text, flush=True)

    installed, skipped = install([p for p in args.peers.split(",") if p], log)
    path = out / "report.md"
    try:
        log(f"deploy of {args.deploy}, load {os.getloadavg()[0]:.2f}:")
        results = Results([], {}, set(), measure_deploys(work, args.deploy, args.runs), [])

        def progress(tools: list[str]) -> Progress:
            def write(issued: dict[tuple[str, int], Figure], once: set[tuple[str, int]]) -> None:
                results.tools, results.issued, results.once = tools, issued, once
                report = write_report(args, results, installed, skipped, load=(load_before, os.getloadavg()),
                                      elapsed=time.perf_counter() - started)
                path.write_text("\n".join(report) + "\n")
            return write

        results.tools, results.issued, results.once = issuance(args, installed, skipped, work, log, progress=progress)
        results.outputs = others(args, log)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = write_report(args, results, installed, skipped, load=(load_before, os.getloadavg()),
                          elapsed=time.perf_counter() - started)
    path.write_text("\n".join(report) + "\n")
    log("")
    log(path.read_text())
    log(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
