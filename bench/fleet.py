# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fleet benchmark (issue 5); run it as ``bench/fleet``.

Boots 3 systemd-nspawn nodes running Debian's HAProxy, starts pebble on the lab
bridge (challtestsrv points the names at nodes 2 and 3), and runs the ``site``
playbook in fleet topology for 10 certificates served by all 3 nodes, from this
machine as the controller. Prints the wall time of that run and the orders pebble
logged, then the same for a ``renew`` with nothing due (twice: the first after a push
indexes the pushed files' facts, the second is the steady state), a forced ``renew`` and
``site`` again on the hosts now set up, each with the wall time of its order step and of
its push to the nodes.
Orders are counted from pebble's own log. Never fails on a time.

With ``--profile``, each run also goes through ansible.posix's ``profile_tasks`` callback
(from PyPI's ``ansible`` package, in the virtualenv bench/peers/crypto.py keeps; ansible-core
2.19 ships no such callback) and the slowest tasks of each run are printed.

Each run prints its wall time, the orders pebble logged, and its phases (read, plan, seed,
order, push, verify, summary) with the orchestration share: the part of the run outside
the order step and the push. ``--sizes 10x3,100x6,300x10`` runs several sizes one after
the other, each on its own nodes.

Usage: bench/fleet [--certs N] [--nodes N | --sizes CxN,...] [--name SET] [--keep DIR] [--profile [N]]
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


PHASES = (
    ("read", "Read what each node serves, and HAProxy's worker PID"),
    ("plan", "Plan the run from what the nodes ask for and serve"),
    ("seed", "Copy the newest bundles from the nodes to the scratch directory"),
    ("order", "Issue or renew what is due"),
    ("push", "Make every node serve the newest certificates"),
    ("verify", "Check that HAProxy was not reloaded"),
    ("summary", "Summarise the run"),
)


def phases(run: Run) -> dict[str, float]:
    """Seconds per phase of the fleet renewal (fleet_issue.yml), from the task banners;
    a phase of several tasks (the seed copy) is their sum."""
    return {name: sum(s for banner, s in run.tasks if task in banner) for name, task in PHASES}


def line(what: str, run: Run, orders: int) -> str:
    changed = sum(run.changed().values())
    split = phases(run)
    work = split["order"] + split["push"]
    share = 100 * (1 - work / run.seconds) if run.seconds else 0.0
    return (f"{what:<34} {run.seconds:6.2f} s   orders: {orders:3d}   changed tasks: {changed:3d}   rc={run.rc}\n"
            f"{'':<34} order step (one module run on the controller) {split['order']:5.2f} s,"
            f" push to all nodes {split['push']:5.2f} s; orchestration (all else) {share:.0f}%\n"
            f"{'':<34} " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in split.items()))


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


def one_size(certs: int, nodes: int, name: str, work: Path, limit: int) -> None:
    with FleetLab(work, name, nodes=nodes, certs=certs) as fleet:
        print(f"lab: {nodes} nspawn nodes ({', '.join(n.address for n in fleet.nodes)}), "
              f"pebble 2.4 on {fleet.nodes[0].address.rsplit('.', 1)[0]}.1, "
              f"challenges answered by nodes 2 and 3; load {os.getloadavg()[0]:.2f}")
        site = fleet.playbook("site")
        after_site = fleet.orders()
        print(line(f"site, {certs} certs x {nodes} nodes:", site, after_site))
        # The first renew after a push reads the pushed files once more to index their
        # facts; the second is the steady state of a schedule that finds nothing due.
        noop = fleet.playbook("renew")
        after_noop = fleet.orders()
        print(line("renew, nothing due:", noop, after_noop - after_site))
        steady = fleet.playbook("renew")
        after_steady = fleet.orders()
        print(line("renew, nothing due, again:", steady, after_steady - after_noop))
        forced = fleet.playbook("renew", "-e", "haproxy_acme_force=true")
        after_forced = fleet.orders()
        print(line("renew, force (all renewed):", forced, after_forced - after_steady), flush=True)
        again = fleet.playbook("site")
        print(line("site, hosts already set up:", again, fleet.orders() - after_forced), flush=True)
        runs = (("site", site), ("renew, nothing due", noop), ("renew, nothing due, again", steady),
                ("renew, force", forced), ("site, hosts already set up", again))
        if limit:
            for what, run in runs:
                print(f"slowest tasks, {what}:\n{profile(run, limit)}")
        for what, run in runs:
            if run.rc:
                print(f"{what} failed:\n{run.tail()}")
    print(BASELINE.format(orders=certs * nodes, certs=certs, nodes=nodes, seconds=certs * nodes * 8,
                          wall=certs * 8, dupes=certs * nodes - certs), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/fleet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--certs", type=int, default=10)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--sizes", help="several sizes one after the other, as CERTSxNODES,...: 10x3,100x6,300x10")
    parser.add_argument("--name", default="bench-fleet", help="the node set's name (default bench-fleet)")
    parser.add_argument("--keep", help="work directory to keep (default: a temporary one, removed)")
    parser.add_argument("--profile", type=int, nargs="?", const=15, default=0, metavar="N",
                        help="print each run's N slowest tasks (profile_tasks; default 15)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/fleet: needs root (it boots systemd-nspawn nodes)", file=sys.stderr)
        return 2
    sizes = [(args.certs, args.nodes)]
    if args.sizes:
        try:
            sizes = [(int(c), int(n)) for c, n in (size.split("x") for size in args.sizes.split(","))]
        except ValueError:
            parser.error(f"--sizes {args.sizes!r}: give CERTSxNODES,..., e.g. 10x3,100x6,300x10")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    if args.profile:
        enable_profile(work, args.profile)
    try:
        for number, (certs, nodes) in enumerate(sizes):
            where = work / f"{certs}x{nodes}"
            where.mkdir(parents=True, exist_ok=True)
            one_size(certs, nodes, args.name if len(sizes) == 1 else f"{args.name}{number}", where, args.profile)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
