# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Argument specs of haproxy_runtime_cert and haproxy_runtime_cert_info.

Plain data without third-party imports, so a module can build its AnsibleModule
(and report a missing ``cryptography`` cleanly) before anything else is imported.
The options are documented in the modules.
"""

from __future__ import annotations

import json
import typing as t

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _defaults
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import ConfigError


def socket_option() -> dict[str, t.Any]:
    """``socket`` has one type in both modules, a list of addresses, so that one value set in
    ``module_defaults`` for the ``haproxy`` action group suits both; Ansible turns a plain
    string into a one-element list."""
    return {"type": "list", "elements": "str", "default": [_defaults.SOCKET]}


def socket_list(value: t.Any) -> list[str]:
    """The stats sockets of a ``socket`` option: a list, or a string as one address.

    Ansible has already made the option a list; the renewal job and tests may pass a
    string. An empty address is refused, and so is one listed twice (it would get
    every certificate twice).
    """
    if value is None or value == []:
        return [_defaults.SOCKET]
    items = [value] if isinstance(value, str) else list(value)
    sockets = [str(item).strip() for item in items]
    if any(not address for address in sockets):
        raise ConfigError(f"socket lists an empty address: {items!r}", socket=items)
    duplicates = sorted({address for address in sockets if sockets.count(address) > 1})
    if duplicates:
        raise ConfigError(f"socket lists {', '.join(duplicates)} twice", socket=items)
    return sockets


def cert_argument_spec() -> dict[str, t.Any]:
    """Options of ``haproxy_runtime_cert``."""
    item = {
        "path": {"type": "str", "required": True},
        "pem_src": {"type": "path"},
        "pem_content": {"type": "str", "no_log": True},
        "crt_list": {"type": "str"},
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        "expected_domains": {"type": "list", "elements": "str"},
    }
    return {
        "socket": socket_option(),
        "path": {"type": "str"},
        "pem_src": {"type": "path"},
        "pem_content": {"type": "str", "no_log": True},
        "crt_list": {"type": "str"},
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        "expected_domains": {"type": "list", "elements": "str"},
        "certificates": {
            "type": "list",
            "elements": "dict",
            "options": item,
            "mutually_exclusive": [("pem_src", "pem_content")],
        },
        "write_file": {"type": "bool", "default": True},
        "owner": {"type": "str"},
        "group": {"type": "str"},
        "mode": {"type": "raw", "default": _defaults.mode_text(_defaults.BUNDLE_MODE)},
        "timeout": {"type": "float", "default": _defaults.SOCKET_TIMEOUT},
        "busy_timeout": {"type": "float", "default": _defaults.BUSY_TIMEOUT},
        "abort_foreign_transaction": {"type": "bool", "default": False},
        "as_json": {"type": "bool", "default": False},
        "verify_address": {"type": "str"},
        "bufsize": {"type": "int", "default": _defaults.BUFSIZE},
    }


CERT_MUTUALLY_EXCLUSIVE = [
    ("path", "certificates"),
    ("pem_src", "pem_content"),
    ("pem_src", "certificates"),
    ("pem_content", "certificates"),
]
CERT_REQUIRED_ONE_OF = [("path", "certificates")]

#: The keys of an entry of haproxy_runtime_cert_info's certificates, for its ``fields`` option.
INFO_FIELDS = ("path", "status", "serial", "not_before", "not_after", "days_left", "domains", "subject", "issuer",
               "algorithm", "sha1_fingerprint", "chain", "crt_lists", "transaction", "bundle_facts")


def info_argument_spec() -> dict[str, t.Any]:
    """Options of ``haproxy_runtime_cert_info``."""
    return {
        "socket": socket_option(),
        "paths": {"type": "list", "elements": "str", "aliases": ["names"]},
        "expiring_within_days": {"type": "float"},
        "timeout": {"type": "float", "default": _defaults.SOCKET_TIMEOUT},
        "bundle_facts": {"type": "bool", "default": False},
        "process_only": {"type": "bool", "default": False},
        "fields": {"type": "list", "elements": "str", "choices": list(INFO_FIELDS)},
        "as_json": {"type": "bool", "default": False},
    }


def as_json(entries: t.Sequence[t.Mapping[str, t.Any]]) -> str:
    """Result entries as one compact JSON text, for the ``as_json`` option of both modules: a
    playbook that reads the results of many hosts handles one string each far faster than
    hundreds of entries, each a value Ansible copies, scrubs for secrets and templates."""
    return json.dumps(list(entries), separators=(",", ":"), sort_keys=True)
