# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers of scripts/build-docs.sh (make docs); only the standard library.

inventory RST_DIR OUT.inv
    The docs site is built offline, so Sphinx gets no inventory of docs.ansible.com.
    This writes a local one (Sphinx inventory version 2) with exactly the labels
    outside the collection that the generated pages refer to, each with its address
    on docs.ansible.com. A label it cannot place fails, naming it.

check-png PNG...
    Decodes each screenshot (PNG, 8-bit RGB or RGBA, no Pillow) and fails unless it
    is a rendered page: not tiny, not one colour, with a good share of pixels that
    differ from the background.
"""

from __future__ import annotations

import re
import struct
import sys
import zlib
from pathlib import Path

COLLECTION = "tlsops.haproxy_acme"
# Labels of the Ansible documentation that antsibull-docs' templates refer to.
ANSIBLE_LABELS = {
    "common_return_values": ("reference_appendices/common_return_values.html#common-return-values", "Return Values"),
    "ansible_configuration_settings": ("reference_appendices/config.html#ansible-configuration-settings",
                                       "Ansible Configuration Settings"),
}
REF = re.compile(r":ref:`(?:[^`<]*<)?([^`<>]+)>?`")
PLUGIN = re.compile(r":ansplugin:`([a-z0-9_]+\.[a-z0-9_]+\.[a-z0-9_.]+)#([a-z_]+)`")
OTHER_COLLECTION = re.compile(r"^ansible_collections\.([a-z0-9_]+)\.([a-z0-9_]+)\.([a-z0-9_.]+)_([a-z]+)$")


def inventory(rst_dir: Path, out: Path) -> int:
    labels: set[str] = set()
    for path in rst_dir.rglob("*.rst"):
        text = path.read_text()
        labels.update(m.group(1).strip() for m in REF.finditer(text))
        labels.update(f"ansible_collections.{fqcn}_{kind}" for fqcn, kind in PLUGIN.findall(text)
                      if not fqcn.startswith(COLLECTION + "."))
    entries, unknown = [], []
    for label in sorted(labels):
        if label.startswith(f"ansible_collections.{COLLECTION}."):
            continue  # the site's own pages
        if label in ANSIBLE_LABELS:
            uri, title = ANSIBLE_LABELS[label]
            entries.append(f"{label} std:label -1 {uri} {title}")
            continue
        m = OTHER_COLLECTION.match(label)
        if m:
            ns, name, plugin, kind = m.groups()
            entries.append(f"{label} std:label -1 collections/{ns}/{name}/{plugin}_{kind}.html {ns}.{name}.{plugin}")
            continue
        unknown.append(label)
    if unknown:
        print(f"docs_site: no address on docs.ansible.com for {unknown}: add them to ANSIBLE_LABELS in "
              "scripts/docs_site.py", file=sys.stderr)
        return 1
    head = b"# Sphinx inventory version 2\n# Project: Ansible\n# Version: devel\n" \
           b"# The remainder of this file is compressed using zlib.\n"
    out.write_bytes(head + zlib.compress("".join(e + "\n" for e in entries).encode()))
    print(f"docs_site: {out.name}: {len(entries)} labels of docs.ansible.com")
    return 0


def decode_png(data: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, bytes per pixel, unfiltered pixel rows)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, width = 8, bytearray(), 0
    height = bpp = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            if depth != 8 or colour not in (2, 6) or interlace:
                raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour}, interlace {interlace}")
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        elif kind == b"IEND":
            break
    raw = zlib.decompress(bytes(idat))
    stride = width * bpp
    out = bytearray(height * stride)
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        line = unfilter(raw[start], bytearray(raw[start + 1:start + 1 + stride]), prev, bpp)
        out[y * stride:(y + 1) * stride] = line
        prev = line
    return width, height, bpp, bytes(out)


def unfilter(filt: int, line: bytearray, prev: bytearray, bpp: int) -> bytearray:
    """Undo one scanline's PNG filter (0 none, 1 sub, 2 up, 3 average, 4 Paeth)."""
    for i in range(len(line)):
        a = line[i - bpp] if i >= bpp else 0
        b = prev[i]
        if filt == 1:
            line[i] = (line[i] + a) & 0xFF
        elif filt == 2:
            line[i] = (line[i] + b) & 0xFF
        elif filt == 3:
            line[i] = (line[i] + ((a + b) >> 1)) & 0xFF
        elif filt == 4:
            c = prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else (b if pb <= pc else c))) & 0xFF
        else:
            break
    return line


def check_png(path: Path) -> str | None:
    data = path.read_bytes()
    if len(data) < 20_000:
        return f"{path}: {len(data)} bytes, too small for a rendered page"
    width, height, bpp, pixels = decode_png(data)
    counts: dict[bytes, int] = {}
    for off in range(0, len(pixels), bpp * 5):  # every fifth pixel
        px = pixels[off:off + 3]
        counts[px] = counts.get(px, 0) + 1
    total = sum(counts.values())
    background, most = max(counts.items(), key=lambda kv: kv[1])
    share = 1 - most / total
    print(f"docs_site: {path.name}: {width}x{height}, {len(data)} bytes, {len(counts)} colours, "
          f"{share:.1%} of pixels differ from the background #{background.hex()}")
    if len(counts) < 16 or share < 0.05:
        return f"{path}: looks blank ({len(counts)} colours, {share:.1%} non-background)"
    return None


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "inventory":
        return inventory(Path(argv[1]), Path(argv[2]))
    if len(argv) >= 2 and argv[0] == "check-png":
        errors = [e for e in (check_png(Path(p)) for p in argv[1:]) if e]
        for error in errors:
            print(f"docs_site: {error}", file=sys.stderr)
        return 1 if errors else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
