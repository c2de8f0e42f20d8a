# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One large host (issue 14); run it as ``bench/host``.

Boots one systemd-nspawn node running Debian's HAProxy and starts pebble on the lab
bridge (challtestsrv points every name at the node). Then, from this machine as the
controller:

1. ``site`` in standalone topology for 2 certificates, ordered from pebble: the ACME
   user, the account, HAProxy's configuration and the renewal timer.
2. N bundles (``--certs``, 10,000) written straight into the node's certificate
   directory (its root filesystem is a directory here), owner ``acme``, group
   ``haproxy``, mode 0640, as the role writes them: pre-made EC bundles from
   tests/integration/scale_bundles.py, valid for 90 days from yesterday, from a local
   CA, so nothing is ordered for them. One restart of HAProxy loads them (setup only).
3. ``site`` again with all N in ``haproxy_acme_certificates``: it finds them valid and
   orders nothing; it writes the host job's renew.json with all N. Timed. With
   ``--skip-playbooks`` this run and the ``renew`` runs below are left out, and
   bench/host writes renew.json itself: the setup run's, its certificate list replaced.
4. The renewal timer is stopped, so that only the runs below renew; then, timed, each
   as the timer runs it (``systemctl start haproxy-acme-renew.service``, which returns
   when the oneshot job ends; its summary line is then read from the journal). Runs
   start at least 31 s apart: the job logs a line per certificate, and journald drops
   what a unit logs beyond its rate limit in 30 s (10,000 lines by default, scaled up
   with free space: two runs of 10,001 lines lost the summary of the second here):
   a. the host job's first run with nothing due (the first to see the N bundles when
      the site run was skipped), then its next run, with nothing due;
   b. the host job with 1 % due: N/100 bundles replaced by ones 65 days older (24 days
      left of 90, below the third at which the lifetime rule renews), on disk and in
      HAProxy (``set ssl cert`` + ``commit`` on the node), so it serves what is on disk;
   c. the ``renew`` playbook with nothing due;
   d. the ``renew`` playbook with another 1 % made due the same way.

Orders are counted from pebble's own log, HAProxy's worker PID (``show info``) is read
before and after the four runs (no reload: it must not change), and the load average is
printed with every figure. Never fails on a time.

Usage: bench/host [--certs N] [--name SET] [--keep DIR] [--skip-playbooks]
"""

from __future__ import annotations

import argparse
import datetime as dt
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
sys.path[:0] = [str(ROOT)]

from cryptography import x509  # noqa: E402

from tests.integration.fleet_harness import CERT_DIR, FleetLab, Run  # noqa: E402
from tests.integration.scale_bundles import bundles  # noqa: E402
from tests.lab.lab import Lab  # noqa: E402
from tests.lab.nodes import nodes as lab_nodes  # noqa: E402

SERVICE = "haproxy-acme-renew.service"  # renewal_timer_name's default
TIMER = "haproxy-acme-renew.timer"
AGE_DAYS = 65  # of a 90-day lifetime: 24 days left, under the 30 the lifetime rule renews at
SETUP_CERTS = 2
JOURNAL_INTERVAL = 31.0  # journald's RateLimitIntervalSec (30 s), and a second to spare
SUMMARY = re.compile(r"^\d+ certificates, \d+ renewed.*$", re.M)
SCALE_ISSUER = "Scale Intermediate"  # scale_bundles' CA: a bundle pebble did not issue

# Runs on the node (Debian's python3): the due bundles, from disk into HAProxy, so that it
# serves what the disk holds. The bare Runtime API: the collection's deploy keeps a newer
# certificate HAProxy serves, and these are older on purpose.
PUSH = r"""
import socket, sys
def command(text):
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect("/run/haproxy/admin.sock")
        sock.sendall(text.encode())
        sock.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return out.decode()
            out += chunk
for path in sys.argv[1:]:
    with open(path) as handle:
        pem = handle.read().strip()
    staged = command(f"set ssl cert {path} <<\n{pem}\n\n")
    committed = command(f"commit ssl cert {path}\n")
    if "Success" not in committed:
        sys.exit(f"{path}: {staged.strip()} / {committed.strip()}")
"""


def code() -> str:
    """The commit measured, and whether plugins/ differed from it (the node runs the working tree)."""
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=False).stdout.strip() or "?"
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "plugins"], capture_output=True,
                           text=True, check=False).stdout.strip()
    return f"code {head}" + (" with uncommitted changes in plugins/" if dirty else "")


def load() -> str:
    return "load " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def names(count: int) -> list[str]:
    return [f"h{i:05d}.host.test" for i in range(1, count + 1)]


def certificates(domains: t.Sequence[str]) -> list[dict[str, t.Any]]:
    return [{"name": d, "domains": [d]} for d in domains]


class HostLab(FleetLab):
    """FleetLab with one node that renews for itself: every name points at it, so pebble
    validates against that node, and the playbooks run in standalone topology."""

    def __init__(self, workdir: Path, set_name: str) -> None:
        super().__init__(workdir, set_name, nodes=1, certs=1)
        self.job_ended = -JOURNAL_INTERVAL  # monotonic time the last job run ended

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.nodeset = lab_nodes.up(self.set_name, self.state, count=1)
        node = self.nodeset.nodes[0]
        # challtestsrv's default answer is the node: no name needs a record of its own.
        self.lab = Lab(self.workdir / "pebble", listen=self.nodeset.host_address, dns_answer=node.address,
                       validation_port=80, haproxy=False)
        self.lab.start()

    def standalone_vars(self, domains: t.Sequence[str]) -> Path:
        assert self.lab is not None and self.lab.info is not None
        info = self.lab.info
        path = self.workdir / f"vars-{len(domains)}.json"
        path.write_text(json.dumps({
            "haproxy_acme_hosts": "nodes", "haproxy_acme_topology": "standalone",
            "haproxy_acme_directory": info.acme_directory, "haproxy_acme_ca_path": info.acme_ca_path,
            "haproxy_acme_terms_agreed": True, "haproxy_acme_email": "ops@host.test",
            "haproxy_acme_certificates": certificates(domains),
        }))
        return path

    @property
    def node(self) -> lab_nodes.Node:
        return self.nodes[0]

    def run(self, *argv: str, check: bool = True, timeout: float = 3600.0) -> str:
        return lab_nodes.node_exec(self.state, self.node.name, list(argv), check=check, timeout=timeout).stdout

    def ids(self, user: str, group: str) -> tuple[int, int]:
        """uid of ``user`` and gid of ``group`` inside the node."""
        root = self.node.merged
        uid = next(int(f[2]) for f in (line.split(":") for line in (root / "etc/passwd").read_text().splitlines())
                   if f[0] == user)
        gid = next(int(f[2]) for f in (line.split(":") for line in (root / "etc/group").read_text().splitlines())
                   if f[0] == group)
        return uid, gid

    def place(self, domains: t.Sequence[str], pems: t.Sequence[bytes]) -> None:
        """Write bundles into the node's certificate directory as the role does, each atomically."""
        uid, gid = self.ids("acme", "haproxy")
        cert_dir = self.node.merged / CERT_DIR.lstrip("/")
        for domain, pem in zip(domains, pems):
            part = cert_dir / f".{domain}.pem.bench"
            part.write_bytes(pem)
            os.chown(part, uid, gid)
            os.chmod(part, 0o640)
            os.replace(part, cert_dir / f"{domain}.pem")

    def write_job_config(self, domains: t.Sequence[str]) -> None:
        """renew.json as the renewal_timer role writes it for these certificates: the one the
        setup run wrote, its certificate list replaced (same keys, same owner and mode)."""
        path = self.node.merged / "etc/haproxy-acme/renew.json"
        config = json.loads(path.read_text())
        config["certificates"] = [{"name": d, "domains": [d], "key_type": "ec256", "profile": None} for d in domains]
        stat = path.stat()
        part = path.with_name(".renew.json.bench")
        part.write_text(json.dumps(config, indent=2) + "\n")
        os.chown(part, stat.st_uid, stat.st_gid)
        os.chmod(part, stat.st_mode & 0o7777)
        os.replace(part, path)

    def push(self, domains: t.Sequence[str]) -> None:
        script = self.node.merged / "root" / "bench-push.py"
        script.write_text(PUSH)
        self.run("python3", "/root/bench-push.py", *(f"{CERT_DIR}/{d}.pem" for d in domains))

    def make_due(self, domains: t.Sequence[str]) -> None:
        self.place(domains, bundles(domains, age_days=AGE_DAYS))
        self.push(domains)

    def loaded(self) -> int:
        """Certificates of the certificate directory HAProxy holds (``show ssl cert``)."""
        out = self.run("sh", "-c", "echo 'show ssl cert' | socat stdio /run/haproxy/admin.sock")
        return sum(1 for line in out.splitlines() if line.startswith(f"{CERT_DIR}/"))

    def issuers(self, domains: t.Sequence[str]) -> dict[str, int]:
        """How many of these bundles on disk each CA issued (pebble's or the scale CA)."""
        found: dict[str, int] = {}
        for domain in domains:
            cert = x509.load_pem_x509_certificate((self.node.merged / CERT_DIR.lstrip("/") / f"{domain}.pem")
                                                  .read_bytes())
            issuer = cert.issuer.rfc4514_string()
            key = "scale CA" if SCALE_ISSUER in issuer else "pebble"
            found[key] = found.get(key, 0) + 1
        return found

    def served_matches_disk(self, domain: str) -> bool:
        """The serial a TLS handshake with SNI gets is the one of the bundle on disk."""
        disk = x509.load_pem_x509_certificate((self.node.merged / CERT_DIR.lstrip("/") / f"{domain}.pem").read_bytes())
        return self.tls_serial(self.node, domain) == disk.serial_number


class JobRun(t.NamedTuple):
    seconds: float  # wall time of `systemctl start`, seen from this machine
    own: float | None  # the service's own start-to-exit time (systemd's monotonic stamps)
    cpu: float | None  # CPU seconds of the service's cgroup, when systemd accounts for it
    rc: str
    summary: str
    lines: int


def job(lab: HostLab) -> JobRun:
    """One run of the timer's service; it returns when the oneshot job has ended."""
    time.sleep(max(0.0, lab.job_ended + JOURNAL_INTERVAL - time.monotonic()))
    started = time.monotonic()
    lab.run("systemctl", "start", SERVICE, check=False)
    seconds = time.monotonic() - started
    lab.job_ended = time.monotonic()
    props = dict(line.partition("=")[::2] for line in lab.run(
        "systemctl", "show", "--property",
        "InvocationID,ExecMainStartTimestampMonotonic,ExecMainExitTimestampMonotonic,ExecMainStatus,CPUUsageNSec",
        SERVICE).splitlines())
    begin, end = props.get("ExecMainStartTimestampMonotonic", ""), props.get("ExecMainExitTimestampMonotonic", "")
    own = (int(end) - int(begin)) / 1e6 if begin.isdigit() and end.isdigit() and int(end) > int(begin) else None
    cpu_ns = props.get("CPUUsageNSec", "")
    cpu = int(cpu_ns) / 1e9 if cpu_ns.isdigit() else None
    # journald reads the job's output after the job has ended: at 10,000 lines the last ones,
    # the summary, may not be in the journal yet when systemctl returns.
    deadline = time.monotonic() + 30
    while True:
        log = lab.run("journalctl", "--no-pager", "-o", "cat",
                      f"_SYSTEMD_INVOCATION_ID={props.get('InvocationID', '')}", check=False)
        found = SUMMARY.findall(log)
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    summary = found[-1] if found else "(no summary line in the journal)"
    return JobRun(seconds, own, cpu, props.get("ExecMainStatus", "?"), summary, len(log.splitlines()))


def job_line(what: str, run: JobRun, orders: int) -> str:
    own = f"{run.own:.2f} s" if run.own is not None else "?"
    cpu = f", CPU {run.cpu:.2f} s" if run.cpu is not None else ""
    return (f"{what:<40} {run.seconds:7.2f} s  (the service itself {own}{cpu})  orders: {orders}  exit={run.rc}\n"
            f"{'':<40} summary: {run.summary}  [{run.lines} journal lines]")


def play_line(what: str, run: Run, orders: int, slowest: int = 4) -> str:
    tasks = sorted(run.tasks, key=lambda item: -item[1])[:slowest]
    changed = sum(run.changed().values())
    text = f"{what:<40} {run.seconds:7.2f} s  orders: {orders}  changed tasks: {changed}  rc={run.rc}"
    for banner, seconds in tasks:
        text += f"\n{'':<40} {seconds:7.2f} s  {banner.rstrip('* ')}"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/host", description=__doc__.split("\n\n")[0])
    parser.add_argument("--certs", type=int, default=10000, help="certificates on the node (default 10000)")
    parser.add_argument("--name", default="bench-host", help="the node set's name (default bench-host)")
    parser.add_argument("--keep", help="work directory to keep (default: a temporary one, removed)")
    parser.add_argument("--skip-playbooks", action="store_true",
                        help="time the host job only: no site or renew run with all certificates")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/host: needs root (it boots a systemd-nspawn node)", file=sys.stderr)
        return 2
    if args.certs < 200:
        print("bench/host: --certs must be at least 200 (two separate 1 % sets of at least 1)", file=sys.stderr)
        return 2
    domains = names(args.certs)
    due = max(1, args.certs // 100)
    first, second = domains[-due:], domains[-2 * due:-due]  # the setup certificates are the first two
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-host-"))
    results: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        results.append(text)

    try:
        lab = HostLab(work, args.name)
        with lab:
            node = lab.node
            print(f"lab: 1 nspawn node ({node.address}), pebble {lab.lab.info.pebble_version if lab.lab and lab.lab.info else '?'}"
                  f" on {lab.nodeset.host_address if lab.nodeset else '?'}; {load()}", flush=True)
            small = lab.playbook("site", vars_file=lab.standalone_vars(domains[:SETUP_CERTS]))
            print(play_line(f"setup: site, {SETUP_CERTS} certs from pebble:", small, lab.orders()), flush=True)
            if small.rc:
                print(small.tail())
                return 1

            started = time.monotonic()
            made = bundles(domains)
            made_s = time.monotonic() - started
            started = time.monotonic()
            lab.place(domains, made)
            placed_s = time.monotonic() - started
            started = time.monotonic()
            lab.run("systemctl", "restart", "haproxy")
            lab.worker_pid(node)  # answers once the new worker runs
            restart_s = time.monotonic() - started
            print(f"setup: {args.certs} bundles made/read from the cache in {made_s:.1f} s, written in {placed_s:.1f} s;"
                  f" HAProxy restarted in {restart_s:.1f} s and holds {lab.loaded()} certificates; {load()}", flush=True)

            full = lab.standalone_vars(domains)
            playbooks = not args.skip_playbooks
            if playbooks:
                before = lab.orders()
                site = lab.playbook("site", vars_file=full)
                say(play_line(f"site, all {args.certs} in the vars:", site, lab.orders() - before) + f"   {load()}")
                if site.rc:
                    print(site.tail())
                    return 1
            else:
                lab.write_job_config(domains)
                say(f"site, all {args.certs} in the vars:         skipped (--skip-playbooks);"
                    " renew.json written by bench/host")
            lab.run("systemctl", "stop", TIMER)  # only the runs below renew

            pids = lab.main_pid(node), lab.worker_pid(node)
            say(f"HAProxy master/worker PID before the runs: {pids[0]}/{pids[1]}")

            before = lab.orders()
            first_run = job(lab)
            what = "host job, first run after site:" if playbooks else "host job, first run (no run before):"
            say(job_line(what, first_run, lab.orders() - before) + f"   {load()}")
            before = lab.orders()
            noop = job(lab)
            say(job_line("host job, nothing due:", noop, lab.orders() - before) + f"   {load()}")

            lab.make_due(first)
            made_due = lab.issuers(first)
            before = lab.orders()
            renewing = job(lab)
            say(job_line(f"host job, {due} due (1 %):", renewing, lab.orders() - before) + f"   {load()}")
            say(f"{'':<40} the {due} due on disk before: {made_due}, after: {lab.issuers(first)};"
                f" {first[0]} served = on disk: {lab.served_matches_disk(first[0])}")

            if playbooks:
                before = lab.orders()
                renew = lab.playbook("renew", vars_file=full)
                say(play_line("renew playbook, nothing due:", renew, lab.orders() - before) + f"   {load()}")
                if renew.rc:
                    print(renew.tail())

                lab.make_due(second)
                before = lab.orders()
                renew_due = lab.playbook("renew", vars_file=full)
                say(play_line(f"renew playbook, {due} due (1 %):", renew_due, lab.orders() - before) + f"   {load()}")
                say(f"{'':<40} the {due} due on disk after: {lab.issuers(second)};"
                    f" {second[0]} served = on disk: {lab.served_matches_disk(second[0])}")
                if renew_due.rc:
                    print(renew_due.tail())
            else:
                say("renew playbook, nothing due and 1 % due: skipped (--skip-playbooks)")

            after = lab.main_pid(node), lab.worker_pid(node)
            say(f"HAProxy master/worker PID after the runs:  {after[0]}/{after[1]}"
                f" ({'unchanged' if after == pids else 'CHANGED'}); holds {lab.loaded()} certificates")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.certs} certificates on one node, {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, "
          f"{' '.join(['bench/host', *sys.argv[1:]])}; {code()}:")
    print("\n".join(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
