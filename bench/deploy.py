# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: pushing certificates to a running HAProxy over its Runtime API, versus a reload; run it as ``bench/deploy``.

Starts a throw-away HAProxy on loopback (``crt <dir>/ strict-sni``, admin stats
socket) and prints:

- 100 new certificates pushed in one haproxy_runtime_cert run (files written too),
- 100 updates, 100 unchanged (the idempotent check),
- one haproxy_runtime_cert_info run over the 100,
- the same 100 updates as a real module process (interpreter start, imports, run),
- HAProxy's own floor: the bare Runtime API commands for 100 new certificates,
- a reload of HAProxy with the same 100 certificates on disk, for comparison,
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
from tests.unit.plugins.module_utils._haproxy.testcerts import bundle  # noqa: E402

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


def haproxy_version() -> str:
    return subprocess.run(["haproxy", "-v"], capture_output=True, text=True, check=True).stdout.split("\n")[0]


def timed(func: t.Callable[..., dict[str, t.Any]], *args: t.Any) -> tuple[float, dict[str, t.Any]]:
    start = time.perf_counter()
    value = func(*args)
    return time.perf_counter() - start, value


def actions(result: dict[str, t.Any]) -> str:
    return str(sorted({c["action"] for c in result["certificates"]}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if shutil.which("haproxy") is None:
        print("bench/deploy: haproxy is not installed", file=sys.stderr)
        return 2
    count = args.count
    work = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    ha = Haproxy(work)
    print(f"{haproxy_version()}; {os.cpu_count()} CPUs; Python {sys.version.split()[0]}")
    print(f"generating {3 * count} EC P-256 bundles (not timed) ...")
    hosts = [f"bench{i:03d}.test" for i in range(count)]
    paths = [str(ha.certs / f"{h}.pem") for h in hosts]
    first = [bundle([h]) for h in hosts]
    second = [bundle([h]) for h in hosts]
    third = [bundle([h]) for h in hosts]

    def push(bundles: list[bytes]) -> dict[str, t.Any]:
        items = [{"path": p, "pem_content": b.decode()} for p, b in zip(paths, bundles)]
        outcome = cert_run.run({"socket": [ha.socket], "certificates": items})
        result, failure = outcome.result, outcome.failure
        if failure:
            raise SystemExit(f"push failed: {failure}")
        return result

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
        seconds, result = timed(info.run, {"socket": ha.socket})
        rows.append((f"haproxy_runtime_cert_info over {count}", seconds, f"{len(result['certificates'])} listed"))

        args_file = work / "args.json"
        items = [{"path": p, "pem_content": b.decode()} for p, b in zip(paths, third)]
        args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"socket": ha.socket, "certificates": items}}))
        module = ROOT / "plugins" / "modules" / "haproxy_runtime_cert.py"
        env = {**os.environ, "PYTHONPATH": str(ROOT / "build" / "collections")}
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(module), str(args_file)], capture_output=True, text=True, env=env, check=False
        )
        seconds = time.perf_counter() - start
        outcome = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {"msg": proc.stderr[-300:]}
        rows.append(
            (
                f"{count} updates as a module process (start, imports, run)",
                seconds,
                "ok" if not outcome.get("failed") else outcome["msg"],
            )
        )

        floor_names = [str(ha.certs / f"floor{i:03d}.pem") for i in range(count)]
        seconds = raw_floor(ha.socket, floor_names, first, str(ha.certs))
        rows.append(
            (f"HAProxy floor: bare new/set/commit/add for {count}, one connection", seconds, "no checks, no read-back")
        )

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
        print()
        print("  a reload as Debian's unit does it, measured beside this in the same run: bench/run")
        print("  goals: 100 new in one run < 0.6 s; _info over 100 < 0.1 s")
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
