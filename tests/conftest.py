"""Make the checkout importable as ansible_collections.tlsops.haproxy_acme.

The collection lives at the repository root; Ansible (and our imports) expect it
under ``<dir>/ansible_collections/tlsops/haproxy_acme``. ``build/collections`` holds
that path as a symlink to the checkout.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS = ROOT / "build" / "collections"
LINK = COLLECTIONS / "ansible_collections" / "tlsops" / "haproxy_acme"

if not LINK.exists():
    LINK.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.symlink(ROOT, LINK)
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", str(COLLECTIONS))
