# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: pushing certificates to a running HAProxy over its Runtime API, versus a reload; run it as ``bench/deploy``.

Starts a throw-away HAProxy on loopback (``crt <dir>/ strict-sni``, admin stats
socket) and prints, for ``--count`` certificates (100 unless given):

- the new certificates pushed in one haproxy_runtime_cert run (files written too),
- updates, unchanged (the idempotent check), in-process;
- one haproxy_runtime_cert_info run over them;
- updates as a real module process (interpreter start, imports, run, peak RSS), with
  the bundles inline (``pem_content``) and by path (``pem_src``);
- HAProxy's own floor: the bare Runtime API commands for the updates (set/commit) and
  for new certificates (new/set/commit/add), on one connection;
- HAProxy's reply time per command with twice the count loaded (run at 1,000 and
  10,000 to see which replies grow with the certificates it holds);
- a reload of HAProxy with the same certificates on disk, for comparison,
- and the goals; bench/run measures the deploy beside a master-worker reload in one report.

Usage: bench/deploy [--count N] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import typing as t
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
if (
    VENV_PYTHON.exists()
    and Path(sys.prefix).resolve() != (ROOT / ".venv").resolve()
    and not os.environ.get("BENCH_NO_REEXEC")
):
    os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), __file__, *sys.argv[1:]])
sys.path[:0] = [str(ROOT / "build" / "collections"), str(ROOT)]

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import cert_run, info  # noqa: E402
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.commands import pem_payload  # noqa: E402
from tests.integration.scale_bundles import bundles as scale_bundles  # noqa: E402
from tests.unit.plugins.module_utils._haproxy.testcerts import bundle  # noqa: E402,F401  (bench/run and bench/scale use it)

MODULE = "ansible_collections.tlsops.haproxy_acme.plugins.modules.haproxy_runtime_cert"
CONFIG = """\
global
    stats socket {socket} level admin mode 600
    stats timeout 30s
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend https
    bind 127.0.0.1:{port} ssl crt {certs}/ strict-sni alpn h2,http/1.1
    http-request return status 200 content-type text/plain string "ok\\n"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Haproxy:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.certs = directory / "certs"
        self.certs.mkdir()
        self.socket = str(directory / "admin.sock")
        self.pidfile = directory / "haproxy.pid"
        self.cfg = directory / "haproxy.cfg"
        self.cfg.write_text(CONFIG.format(socket=self.socket, port=free_port(), certs=self.certs))

    def start(self) -> float:
        return self._run(["haproxy", "-D", "-q", "-p", str(self.pidfile), "-f", str(self.cfg)])

    def reload(self) -> float:
        """A soft reload as systemd does it: a new process loads everything, the old one finishes."""
        old = self.pidfile.read_text().split()
        return self._run(["haproxy", "-D", "-q", "-p", str(self.pidfile), "-f", str(self.cfg), "-sf", *old])

    def _run(self, argv: list[str]) -> float:
        start = time.perf_counter()
        subprocess.run(argv, check=True)  # -D returns once the new process is up and bound
        elapsed = time.perf_counter() - start
        deadline = time.monotonic() + 10
        while not os.path.exists(self.socket) and time.monotonic() < deadline:
            time.sleep(0.01)
        return elapsed

    def stop(self) -> None:
        if self.pidfile.exists():
            for pid in self.pidfile.read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), 15)


@contextlib.contextmanager
def bare_cli(path: str) -> t.Iterator[t.Callable[[bytes], bytes]]:
    """One Runtime API connection in interactive mode (``prompt``); yields ``cmd(data) -> answer``."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(path)

        def cmd(data: bytes) -> bytes:
            sock.sendall(data)
            buf = b""
            while not (buf == b"\n> " or buf.endswith(b"\n\n> ")):
                buf += sock.recv(65536)
            return buf

        cmd(b"prompt\n")
        yield cmd


def raw_floor(path: str, names: list[str], bundles: list[bytes], crt_list: str) -> float:
    """The bare commands, no checks and no read-back: what HAProxy itself costs."""
    with bare_cli(path) as cmd:
        start = time.perf_counter()
        for name, pem in zip(names, bundles):
            cmd(f"new ssl cert {name}\n".encode())
            cmd(f"set ssl cert {name} <<\n{pem_payload(pem)}\n".encode())
            cmd(f"commit ssl cert {name}\n".encode())
            cmd(f"add ssl crt-list {crt_list} {name}\n".encode())
        return time.perf_counter() - start


def raw_update_floor(path: str, names: list[str], bundles: list[bytes]) -> float:
    """The bare commands that replace loaded certificates: set/commit, one connection."""
    with bare_cli(path) as cmd:
        start = time.perf_counter()
        for name, pem in zip(names, bundles):
            cmd(f"set ssl cert {name} <<\n{pem_payload(pem)}\n".encode())
            cmd(f"commit ssl cert {name}\n".encode())
        return time.perf_counter() - start


def reply_times(path: str, names: list[str], bundles: list[bytes], samples: int = 40) -> dict[str, float]:
    """HAProxy's own reply time per command (median ms), on one connection, as it holds what it holds now."""
    picks = [names[i * len(names) // samples] for i in range(samples)]
    chosen = {n: b for n, b in zip(names, bundles) if n in set(picks)}
    out: dict[str, list[float]] = {}
    with bare_cli(path) as cmd:

        def clock(what: str, data: bytes) -> None:
            start = time.perf_counter()
            cmd(data)
            out.setdefault(what, []).append((time.perf_counter() - start) * 1000)

        for name in picks:
            clock("show ssl cert (the full list)", b"show ssl cert\n")
            clock("show ssl cert <name>", f"show ssl cert {name}\n".encode())
            clock("transaction probe (abort ssl cert <no store>)", b"abort ssl cert /dev/null/probe\n")
            start = time.perf_counter()
            cmd(f"set ssl cert {name} <<\n{pem_payload(chosen[name])}\n".encode())
            cmd(f"commit ssl cert {name}\n".encode())
            out.setdefault("set ssl cert + commit (an update)", []).append((time.perf_counter() - start) * 1000)
    return {what: statistics.median(values) for what, values in out.items()}


def haproxy_rss(ha: Haproxy) -> float:
    """HAProxy's resident memory now (MB), from /proc (its worker is the process in the pid file)."""
    pid = ha.pidfile.read_text().split()[0]
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def haproxy_version() -> str:
    return subprocess.run(["haproxy", "-v"], capture_output=True, text=True, check=True).stdout.split("\n")[0]


def timed(func: t.Callable[..., t.Any], *args: t.Any) -> tuple[float, t.Any]:
    start = time.perf_counter()
    value = func(*args)
    return time.perf_counter() - start, value


def actions(result: dict[str, t.Any]) -> str:
    return str(sorted({c["action"] for c in result["certificates"]}))


def module_process(items: list[dict[str, t.Any]], socket_path: str, work: Path) -> tuple[float, float, str]:
    """haproxy_runtime_cert as Ansible starts it: wall seconds, peak RSS (MB), outcome."""
    args_file = work / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"socket": socket_path, "certificates": items}}))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "build" / "collections")}
    out = work / "module.out"
    with out.open("wb") as stdout:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", MODULE, str(args_file)], stdout=stdout,
                                stderr=subprocess.DEVNULL, env=env)
        _, _status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    text = out.read_text(errors="replace")
    outcome = json.loads(text) if text.strip().startswith("{") else {"failed": True, "msg": text[-300:]}
    note = actions(outcome) if not outcome.get("failed") else str(outcome.get("msg"))[:200]
    return seconds, usage.ru_maxrss / 1024, note


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--skip-inline", action="store_true",
                        help="leave out the module process with inline bundles (it grows as N^2, see docs/large-hosts.md)")
    args = parser.parse_args()
    if shutil.which("haproxy") is None:
        print("bench/deploy: haproxy is not installed", file=sys.stderr)
        return 2
    count = args.count
    work = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    ha = Haproxy(work)
    print(f"{haproxy_version()}; {os.cpu_count()} CPUs; Python {sys.version.split()[0]}; "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    hosts = [f"bench{i:05d}.test" for i in range(count)]
    paths = [str(ha.certs / f"{h}.pem") for h in hosts]
    # EC P-256 bundles, each generation newer than the one before (kept for the day: not timed)
    first, second, third, fourth = (scale_bundles(hosts, g) for g in range(4))
    staging = work / "staging"
    staging.mkdir()
    sources = [staging / f"{h}.pem" for h in hosts]
    for source, pem in zip(sources, fourth):
        source.write_bytes(pem)

    def push(bundles: list[bytes]) -> dict[str, t.Any]:
        items = [{"path": p, "pem_content": b.decode()} for p, b in zip(paths, bundles)]
        outcome = cert_run.run({"socket": [ha.socket], "certificates": items})
        if outcome.failure:
            raise SystemExit(f"push failed: {outcome.failure}")
        return outcome.result

    try:
        ha.start()
        rows: list[tuple[str, float, str]] = []
        seconds, result = timed(push, first)
        rows.append(
            (f"{count} new certificates, one haproxy_runtime_cert run (files written)", seconds, actions(result))
        )
        seconds, result = timed(push, second)
        rows.append((f"{count} updates, one run", seconds, actions(result)))
        seconds, result = timed(push, second)
        rows.append((f"{count} unchanged (idempotent check), one run", seconds, actions(result)))
        seconds, outcome = timed(info.run, {"socket": ha.socket})
        rows.append(
            (f"haproxy_runtime_cert_info over {count}", seconds, f"{len(outcome.result['certificates'])} listed")
        )

        if not args.skip_inline:
            inline = [{"path": p, "pem_content": b.decode()} for p, b in zip(paths, third)]
            seconds, rss, note = module_process(inline, ha.socket, work)
            rows.append((f"{count} updates as a module process, bundles inline (pem_content)", seconds,
                         f"{note}; peak RSS {rss:.0f} MB"))
        by_path = [{"path": p, "pem_src": str(s)} for p, s in zip(paths, sources)]
        seconds, rss, note = module_process(by_path, ha.socket, work)
        rows.append((f"{count} updates as a module process, bundles by path (pem_src)", seconds,
                     f"{note}; peak RSS {rss:.0f} MB"))

        seconds = raw_update_floor(ha.socket, paths, first)
        rows.append((f"HAProxy floor: bare set/commit for {count} updates, one connection", seconds,
                     "no checks, no read-back"))
        floor_names = [str(ha.certs / f"floor{i:05d}.pem") for i in range(count)]
        seconds = raw_floor(ha.socket, floor_names, first, str(ha.certs))
        rows.append(
            (f"HAProxy floor: bare new/set/commit/add for {count}, one connection", seconds, "no checks, no read-back")
        )
        replies = reply_times(ha.socket, paths, second)
        rss = haproxy_rss(ha)

        seconds = ha.reload()
        loaded = len(list(ha.certs.glob("*.pem")))
        rows.append(
            (
                f"HAProxy reload (-sf) with the {loaded} certificates on disk",
                seconds,
                "drops idle keep-alive connections",
            )
        )

        print()
        width = max(len(r[0]) for r in rows)
        for label, seconds, note in rows:
            print(f"  {label:<{width}}  {seconds:7.3f} s   {note}")
        print(f"\n  HAProxy's reply times with {2 * count} certificates loaded (median of 40, one connection):")
        for what, ms in replies.items():
            print(f"    {what:<48} {ms:8.3f} ms")
        print(f"  HAProxy's RSS with {2 * count} certificates loaded: {rss:.0f} MB")
        print()
        print(f"  load {os.getloadavg()[0]:.2f} at the end")
        print("  a reload as Debian's unit does it, measured beside this in the same run: bench/run")
        print("  goals: 100 new in one run < 0.6 s; _info over 100 < 0.1 s; at 10,000 within 2x of the floor")
    finally:
        ha.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            time.sleep(0.2)
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
