# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The account key: from a file (an acme.sh key works as is) or from content; generated when asked."""

from __future__ import annotations

import os
import typing as t

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _defaults
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import ConfigError, FileError, PemError
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._files import atomic_write, read_optional
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import (
    generate_private_key,
    load_private_key,
    private_key_to_pem,
)

if t.TYPE_CHECKING:
    from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.jws import SigningKey


def _load(data: bytes, what: str) -> SigningKey:
    """load_private_key, with every message naming the key (some of _pem's do not)."""
    try:
        return load_private_key(data, what)
    except PemError as exc:
        if not exc.msg.startswith(what):
            exc.msg = f"{what}: {exc.msg}"
            exc.args = (exc.msg,)
        raise


def load_account_key(path: str | None, content: str | None, what: str = "account_key") -> SigningKey:
    """The account key from ``content`` or the file at ``path``; ConfigError/FileError/PemError.

    ``what`` names the options in messages: ``account_key`` (``account_key_path`` /
    ``account_key_content``) or ``new_account_key`` for a rollover's new key.
    """
    if content and path:
        raise ConfigError(f"give {what}_path or {what}_content, not both")
    if content:
        return _load(content.encode("utf-8"), f"{what}_content")
    if not path:
        raise ConfigError(f"an account key is needed: set {what}_path or {what}_content")
    data = _read(path)
    label = what.replace("_", " ")
    if data is None:
        raise FileError(
            f"{label} {path} does not exist: create it with tlsops.haproxy_acme.acme_account", path=path
        )
    return _load(data, f"{label} {path}")


def _read(path: str) -> bytes | None:
    if os.path.isdir(path):
        raise FileError(f"account key {path} is a directory", path=path)
    return read_optional(path)


def ensure_account_key_file(
    path: str, key_type: str, owner: str | None = None, group: str | None = None, check_mode: bool = False
) -> tuple[SigningKey, bool]:
    """Load the key at ``path``, or generate one of ``key_type`` and write it 0600; (key, created)."""
    data = _read(path)
    if data is not None:
        return _load(data, f"account key {path}"), False
    key = generate_private_key(key_type)
    if not check_mode:
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise FileError(f"cannot create account key {path}: {directory} does not exist", path=path)
        atomic_write(path, private_key_to_pem(key), mode=_defaults.ACCOUNT_KEY_MODE, owner=owner, group=group)
    return key, True
