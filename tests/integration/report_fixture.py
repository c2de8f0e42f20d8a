# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The report playbook's output from fixture data, through the real task files and templates.

Four local hosts stand in for nodes: each notes its certificates (given as *play*
vars, which hostvars does not show) with roles/haproxy_acme/tasks/report_note.yml, takes a
canned haproxy_runtime_cert_info result instead of reading a socket, and
roles/haproxy_acme/tasks/report_write.yml builds and writes the report. web4 did not answer.

    python -m tests.integration.report_fixture OUT_DIR [--screenshot docs/report.png]

writes the report to OUT_DIR and, with --screenshot, a picture of its HTML page taken
by headless Chromium, stored as an indexed PNG (a few tens of kB) for the docs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import typing as t
import zlib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TASKS = ROOT / "roles" / "haproxy_acme" / "tasks"
CERT_DIR = "/etc/haproxy/certs"
FMT = "%Y-%m-%dT%H:%M:%SZ"
NODES = ["web1", "web2", "web3", "web4"]

# Names that Markdown would otherwise read as markup or as a cell border.
PIPE, STAR, TICK, PLAIN = "shop|eu.example", "*.wild_card.example", "`api`.example", "blog.example"
DOMAINS = {PIPE: ["shop.eu.example"], STAR: ["*.wild_card.example"], TICK: ["api.example"],
           PLAIN: ["blog.example", "www.blog.example"]}
CERTIFICATES = [{"name": name, "domains": domains} for name, domains in DOMAINS.items()]
#: What each node asks for: web4 (which does not answer) only two of the four.
ASKS = {"web1": CERTIFICATES, "web2": CERTIFICATES, "web3": CERTIFICATES, "web4": [CERTIFICATES[0], CERTIFICATES[3]]}


def _served(name: str, serial: str, left: float, now: dt.datetime, lifetime: float = 90) -> dict[str, t.Any]:
    not_after = (now + dt.timedelta(days=left)).replace(microsecond=0)
    return {"path": f"{CERT_DIR}/{name}.pem", "status": "Used", "serial": serial,
            "not_before": (not_after - dt.timedelta(days=lifetime)).strftime(FMT), "not_after": not_after.strftime(FMT),
            "days_left": round(left, 1), "domains": DOMAINS[name],
            "subject": f"/CN={name}", "issuer": "/C=US/O=Let's Encrypt/CN=R11", "algorithm": "EC256",
            "sha1_fingerprint": serial * 10, "chain": ["/C=US/O=Let's Encrypt/CN=R11"], "crt_lists": [CERT_DIR],
            "transaction": False}


def fixture(now: dt.datetime | None = None) -> dict[str, t.Any]:
    """Per node, what it asks for and what haproxy_runtime_cert_info said.

    shop|eu         60 days left everywhere: in sync
    *.wild_card     10 days left of 90 everywhere: due
    `api`           expired 2 days ago on web1 and web3, not served by web2 (missing)
    blog            80 days left, but web1 serves an older copy (20 days left)
    web4            did not answer; it asks for shop|eu and blog only
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    common = [_served(PIPE, "0A01", 60, now), _served(STAR, "0B01", 10, now)]
    reads = {
        "web1": [*common, _served(TICK, "0C01", -2, now), _served(PLAIN, "0D00", 20, now)],
        "web2": [*common, _served(PLAIN, "0D01", 80, now)],
        "web3": [*common, _served(TICK, "0C01", -2, now), _served(PLAIN, "0D01", 80, now)],
    }
    result: dict[str, t.Any] = {}
    for index, name in enumerate(NODES):
        if name in reads:
            read = {"changed": False, "certificates": reads[name], "transaction": None, "crt_lists": {},
                    "process": {"pid": 4711 + index, "version": "3.0.10-1" if name == "web2" else "2.6.12-1+deb12u1",
                                "uptime_sec": 86400}}
        else:
            read = {"unreachable": True, "changed": False, "msg": "Failed to connect to the host via ssh"}
        result[name] = {"certificates": ASKS[name], "read": read}
    return result


PLAY = """\
- name: The report from fixture data
  hosts: nodes
  gather_facts: false
  vars:
    haproxy_acme_topology: fleet
    haproxy_acme_certificates: "{{{{ report_fixture[inventory_hostname].certificates }}}}"
    haproxy_acme_report_dir: {out}
    _haproxy_acme_cert_dir: {cert_dir}
    _haproxy_acme_remaining_days: ""
  tasks:
    - name: Note the certificates each node asks for
      ansible.builtin.import_tasks: {tasks}/report_note.yml

    - name: Stand in for haproxy_runtime_cert_info
      ansible.builtin.set_fact:
        _haproxy_acme_report_served: "{{{{ report_fixture[inventory_hostname].read }}}}"

    - name: Build and write the report
      ansible.builtin.import_tasks: {tasks}/report_write.yml
"""


def render(out: Path, workdir: Path, now: dt.datetime | None = None) -> subprocess.CompletedProcess[str]:
    """Run the fixture play; the report lands in ``out``."""
    workdir.mkdir(parents=True, exist_ok=True)
    # The play's templates/ is the haproxy_acme role's own, as for the report playbook.
    if not (workdir / "templates").exists():
        (workdir / "templates").symlink_to(ROOT / "roles" / "haproxy_acme" / "templates")
    (workdir / "inventory.ini").write_text("[nodes]\n" + "".join(f"{n} ansible_connection=local\n" for n in NODES))
    (workdir / "play.yml").write_text(PLAY.format(out=json.dumps(str(out)), cert_dir=CERT_DIR, tasks=TASKS))
    (workdir / "fixture.json").write_text(json.dumps({"report_fixture": fixture(now)}))
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "build" / "collections"),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "false", "ANSIBLE_LOCALHOST_WARNING": "false",
           "ANSIBLE_PYTHON_INTERPRETER": sys.executable}
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(workdir / "inventory.ini"),
         "-e", f"@{workdir / 'fixture.json'}", str(workdir / "play.yml")],
        env=env, capture_output=True, text=True, timeout=300, check=False)


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def screenshot(page: Path, target: Path, size: str = "1180,760") -> None:
    """Headless Chromium's picture of ``page``, written to ``target`` as an indexed PNG."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("screenshot: chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as scratch:
        shot = Path(scratch) / "shot.png"
        subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={scratch}/profile", "--hide-scrollbars",
                        "--disable-lcd-text", f"--window-size={size}", f"--screenshot={shot}", page.as_uri()],
                       capture_output=True, timeout=120, check=True)
        indexed_png(shot, target)


def _rgb_rows(path: Path) -> tuple[int, int, list[list[tuple[int, int, int]]]]:
    """Width, height and RGB pixels of an 8-bit RGB or RGBA PNG (what Chromium writes)."""
    data, pos, idat = path.read_bytes(), 8, b""
    width = height = bpp = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body, pos = data[pos + 8:pos + 8 + length], pos + 12 + length
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6), (depth, colour)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw, stride, prev, rows, at = zlib.decompress(idat), width * bpp, bytearray(width * bpp), [], 0
    for _ in range(height):
        kind, line, at = raw[at], bytearray(raw[at + 1:at + 1 + stride]), at + 1 + stride
        for x in range(stride):  # undo the PNG filter of the row (RFC 2083 section 6)
            a, b, c = (line[x - bpp] if x >= bpp else 0), prev[x], (prev[x - bpp] if x >= bpp else 0)
            if kind == 4:
                p = a + b - c
                a = a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else b if abs(p - b) <= abs(p - c) else c
            line[x] = (line[x] + (0, a, b, (a + b) // 2, a)[kind]) & 255
        rows.append([(line[x], line[x + 1], line[x + 2]) for x in range(0, stride, bpp)])
        prev = line
    return width, height, rows


def indexed_png(source: Path, target: Path, colours: int = 64, spread: int = 150) -> None:
    """``source`` with at most ``colours`` colours: the most frequent ones that differ by more than
    ``spread`` (squared RGB distance) from those already taken, every pixel mapped to the nearest."""
    width, height, rows = _rgb_rows(source)
    counts = Counter(p for row in rows for p in row)

    def distance(one: tuple[int, ...], two: tuple[int, ...]) -> int:
        return sum((a - b) ** 2 for a, b in zip(one, two))

    palette: list[tuple[int, int, int]] = []
    for colour, _ in counts.most_common():
        if len(palette) < colours and all(distance(colour, q) > spread for q in palette):
            palette.append(colour)
    index = {c: min(range(len(palette)), key=lambda i, c=c: distance(c, palette[i])) for c in counts}
    raw = b"".join(b"\0" + bytes(index[p] for p in row) for row in rows)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    target.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0))
                       + chunk(b"PLTE", b"".join(bytes(c) for c in palette)) + chunk(b"IDAT", zlib.compress(raw, 9))
                       + chunk(b"IEND", b""))


if __name__ == "__main__":
    target = Path(sys.argv[1]).resolve()
    proc = render(target, target / "play")
    if proc.returncode != 0:
        sys.exit(proc.stdout[-3000:] + proc.stderr[-3000:])
    if sys.argv[2:3] == ["--screenshot"]:
        screenshot(target / "haproxy-acme-report.html", Path(sys.argv[3]))
    print(f"report: {target}/haproxy-acme-report.md, .html and .json")
