"""``bench/run --smoke``: the benchmarks at their smallest size, so that ``make bench`` keeps working.

One certificate by this collection, the protocol floor and lego (skipped, and reported so,
when it cannot be installed), a deploy of 5, the cost curves for 5. Checks that every
figure was measured and the report written; never a time.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_smoke(tmp_path: Path) -> None:
    env = {**os.environ, "TLSOPS_BENCH_INSTALL_TIMEOUT": "60"}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = (tmp_path / "report.md").read_text()
    assert "failed (" not in report, report
    issuance = next(line for line in report.splitlines() if line.startswith("| 1 |"))
    header = next(line for line in report.splitlines() if line.startswith("| certificates |"))
    assert "this collection" in header and "floor" in header, report
    # Every measured column holds a figure; the quoted one is marked as quoted.
    assert all(re.fullmatch(r"\d+\.\d\d s( \(\d+\.\d+x\))?", c.strip()) for c in issuance.split("|")[2:-1]), report
    assert "acme.sh 3.1 (quoted)" in header and "quoted from the project's issue tracker" in report
    assert " lego " in header or "skipped: lego" in report, report
    for row in ("| this collection |", "| module process |", "| HAProxy floor (bare commands) |", "| HAProxy reload |"):
        assert re.search(re.escape(row) + r" \d+\.\d\d s", report), report
    assert "## bench/scale --counts 5\n" in report and "| host job, nothing due | 5 |" in report, report
    assert "5 unchanged" in report and "5 created" in report, report
