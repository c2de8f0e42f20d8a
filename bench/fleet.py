# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fleet benchmark (issue 5); run it as ``bench/fleet``.

Boots 3 systemd-nspawn nodes running Debian's HAProxy, starts pebble on the lab
bridge (challtestsrv points the names at nodes 2 and 3), and runs the ``site``
playbook in fleet topology for 10 certificates served by all 3 nodes, from this
machine as the controller. Prints the wall time of that run and the orders pebble
logged, then the same for a ``renew`` with nothing due and for a forced ``renew``,
each with the wall time of its order step and of its push to the nodes.
Orders are counted from pebble's own log. Never fails on a time.

With ``--profile``, each run also goes through ansible.posix's ``profile_tasks`` callback
(from PyPI's ``ansible`` package, in the virtualenv bench/peers/crypto.py keeps; ansible-core
2.19 ships no such callback) and the slowest tasks of each run are printed.

Usage: bench/fleet [--certs N] [--nodes N] [--name SET] [--keep DIR] [--profile [N]]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from peers import crypto  # noqa: E402

from tests.integration.fleet_harness import FleetLab, Run  # noqa: E402

PROFILE_LINE = re.compile(r"^(?P<task>.+?) -{2,} (?P<seconds>\d+\.\d+)s$")

BASELINE = """\
baseline quoted in issue 5 (same machine):
  acme.sh on each node                      {orders} orders ({certs} per node x {nodes} nodes), ~8 s each:
                                            ~{seconds} s of order time (~{wall} s wall with the nodes in
                                            parallel), {dupes} duplicate certificates
  Let's Encrypt allows 5 duplicate certificates per week"""


def line(what: str, run: Run, orders: int) -> str:
    changed = sum(run.changed().values())
    order_step = run.task_seconds("Issue or renew what is due")
    push_step = run.task_seconds("Make every node serve the newest certificates")
    return (f"{what:<34} {run.seconds:6.2f} s   orders: {orders:3d}   changed tasks: {changed:3d}   rc={run.rc}\n"
            f"{'':<34} order step (one module run on the controller) {order_step:5.2f} s,"
            f" push to all nodes {push_step:5.2f} s")


def enable_profile(work: Path, limit: int) -> None:
    """profile_tasks for every run FleetLab starts (its environment starts from ours)."""
    plugins = work / "callback_plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    (plugins / "profile_tasks.py").write_text(crypto.callback_source("profile_tasks"))
    os.environ.update({"ANSIBLE_CALLBACK_PLUGINS": str(plugins), "ANSIBLE_CALLBACKS_ENABLED": "profile_tasks",
                       "PROFILE_TASKS_TASK_OUTPUT_LIMIT": str(limit)})


def profile(run: Run, limit: int) -> str:
    """The slowest tasks of a run, from profile_tasks' recap."""
    recap = run.output[run.output.rfind("TASKS RECAP"):]
    rows = [m for m in (PROFILE_LINE.match(line.strip()) for line in recap.splitlines()) if m]
    return "\n".join(f"    {float(m['seconds']):7.2f} s  {m['task']}" for m in rows[:limit])


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/fleet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--certs", type=int, default=10)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--name", default="bench-fleet", help="the node set's name (default bench-fleet)")
    parser.add_argument("--keep", help="work directory to keep (default: a temporary one, removed)")
    parser.add_argument("--profile", type=int, nargs="?", const=15, default=0, metavar="N",
                        help="print each run's N slowest tasks (profile_tasks; default 15)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/fleet: needs root (it boots systemd-nspawn nodes)", file=sys.stderr)
        return 2
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    if args.profile:
        enable_profile(work, args.profile)
    try:
        with FleetLab(work, args.name, nodes=args.nodes, certs=args.certs) as fleet:
            print(f"lab: {args.nodes} nspawn nodes ({', '.join(n.address for n in fleet.nodes)}), "
                  f"pebble 2.4 on {fleet.nodes[0].address.rsplit('.', 1)[0]}.1, "
                  f"challenges answered by nodes 2 and 3; load {os.getloadavg()[0]:.2f}")
            site = fleet.playbook("site")
            after_site = fleet.orders()
            print(line(f"site, {args.certs} certs x {args.nodes} nodes:", site, after_site))
            noop = fleet.playbook("renew")
            after_noop = fleet.orders()
            print(line("renew, nothing due:", noop, after_noop - after_site))
            forced = fleet.playbook("renew", "-e", "haproxy_acme_force=true")
            print(line("renew, force (all renewed):", forced, fleet.orders() - after_noop))
            if args.profile:
                for what, run in (("site", site), ("renew, nothing due", noop), ("renew, force", forced)):
                    print(f"slowest tasks, {what}:\n{profile(run, args.profile)}")
            if site.rc or noop.rc or forced.rc:
                print(site.tail() if site.rc else noop.tail() if noop.rc else forced.tail())
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    orders = args.certs * args.nodes
    print(BASELINE.format(orders=orders, certs=args.certs, nodes=args.nodes, seconds=orders * 8,
                          wall=args.certs * 8, dupes=orders - args.certs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
