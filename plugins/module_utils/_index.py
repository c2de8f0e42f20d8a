# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What each bundle of a directory says, kept beside the bundles: a run with nothing due
reads and parses none of them (docs/large-hosts.md).

The index is one dotfile in the certificate directory (HAProxy's directory loader skips
dotfiles), ``0640`` like the lock beside it. For each file it holds the facts a caller
computed from the file's bytes (serial, dates, names: never key material), under the
file's identity: size, modification and change times in nanoseconds, and inode. Writing
the file, renaming another over it, or changing its mode or owner changes one of these,
and the facts are computed again from the bytes. The bundle stays the one source: a
missing, unreadable, foreign or damaged index is an empty one, and an index that cannot
be written is not written.

Callers hold the run lock of the directory (``_lock``) while they read and save it.
"""

from __future__ import annotations

import json
import os
import threading
import typing as t

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import HaproxyAcmeError
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._files import atomic_write, read_optional

INDEX_NAME = ".tlsops-haproxy-acme.index.json"
FORMAT = 1
MODE = 0o640
#: The kind of facts the renewal rule reads (_acme/renewal.py), named here so that a reader of the
#: index (haproxy_runtime_cert_info) need not import that rule, and cryptography, to ask for them.
RENEWAL_KIND = "renewal"

Facts = t.Dict[str, t.Any]

# Index path -> (its identity when read or written, its entries), for this process.
_PARSED: dict[str, tuple[list[int], dict[str, dict[str, t.Any]]]] = {}


def identity(st: os.stat_result) -> list[int]:
    """What changes whenever the file's content (or its mode or owner) may have changed."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


class BundleIndex:
    """Facts by file name for one directory; ``enabled=False`` reads and writes nothing (check mode)."""

    def __init__(self, directory: str, *, enabled: bool = True) -> None:
        self.directory = directory
        self.path = os.path.join(directory, INDEX_NAME)
        self.enabled = enabled
        self._entries: dict[str, dict[str, t.Any]] = self._load() if enabled else {}
        self._changed = False
        self._guard = threading.Lock()  # orders run in threads (put)
        self.hits = 0

    def _load(self) -> dict[str, dict[str, t.Any]]:
        # The host job decides, then deploys: the second reader of an index the first one
        # left as it was takes the entries already parsed (JSON of 10,000 bundles: 0.2 s).
        try:
            st = os.stat(self.path)
        except OSError:
            return {}
        seen = _PARSED.get(self.path)
        if seen is not None and seen[0] == identity(st):
            return seen[1]
        try:
            data = read_optional(self.path)
            document = json.loads(data) if data else {}
        except (HaproxyAcmeError, ValueError):
            return {}
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            return {}
        entries = document.get("files")
        entries = {k: v for k, v in entries.items() if isinstance(v, dict)} if isinstance(entries, dict) else {}
        _PARSED[self.path] = (identity(st), entries)
        return entries

    def get(self, path: str, kind: str, compute: t.Callable[[bytes], Facts | None]) -> tuple[bool, Facts | None]:
        """(whether ``path`` exists, its facts of ``kind``): from the index when the file is
        unchanged, else from ``compute(bytes)``, which returns None for facts it cannot
        tell (not kept). FileError when the file exists but cannot be read."""
        name = os.path.basename(path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return False, None
        except OSError:
            st = None  # read_optional below says why
        key = identity(st) if st is not None else None
        entry = self._entries.get(name)
        if key is not None and entry is not None and entry.get("id") == key and isinstance(entry.get(kind), dict):
            self.hits += 1
            return True, t.cast(Facts, entry[kind])
        data = read_optional(path)
        if data is None:
            return False, None
        facts = compute(data)
        if key is not None and facts is not None:
            self._keep(name, key, kind, facts)
        return True, facts

    def put(self, path: str, kind: str, facts: Facts) -> None:
        """Keep ``facts`` for the file just written at ``path``."""
        try:
            key = identity(os.stat(path))
        except OSError:
            return
        self._keep(os.path.basename(path), key, kind, facts)

    def _keep(self, name: str, key: list[int], kind: str, facts: Facts) -> None:
        if not self.enabled:
            return
        with self._guard:
            entry = self._entries.get(name)
            if entry is None or entry.get("id") != key:
                entry = self._entries[name] = {"id": key}
            entry[kind] = facts
            self._changed = True

    @property
    def changed(self) -> bool:
        """Whether there is anything for :meth:`save` to write."""
        return self.enabled and self._changed

    def save(self) -> bool:
        """Write the index when it changed, keeping only files still in the directory; False when
        nothing was written (unchanged, disabled, or the directory is not writable)."""
        if not self.changed:
            return False
        try:
            present = set(os.listdir(self.directory))
        except OSError:
            return False
        files = {name: entry for name, entry in sorted(self._entries.items()) if name in present}
        text = json.dumps({"format": FORMAT, "files": files}, separators=(",", ":"), sort_keys=True)
        try:
            atomic_write(self.path, text.encode("utf-8"), mode=MODE)
            _PARSED[self.path] = (identity(os.stat(self.path)), files)
        except (HaproxyAcmeError, OSError):
            return False  # only a cache: the next run reads the bundles again
        self._changed = False
        return True
