# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Argument specs of haproxy_runtime_cert and haproxy_runtime_cert_info.

Plain data without third-party imports, so a module can build its AnsibleModule
(and report a missing ``cryptography`` cleanly) before anything else is imported.
The options are documented in the modules.
"""

from __future__ import annotations

import typing as t

DEFAULT_SOCKET = "/run/haproxy/admin.sock"
DEFAULT_TIMEOUT = 10.0
DEFAULT_BUSY_TIMEOUT = 10.0
DEFAULT_BUFSIZE = 16384  # HAProxy's tune.bufsize default


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
        "socket": {"type": "list", "elements": "str", "default": [DEFAULT_SOCKET]},
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
        "mode": {"type": "raw", "default": "0640"},
        "timeout": {"type": "float", "default": DEFAULT_TIMEOUT},
        "busy_timeout": {"type": "float", "default": DEFAULT_BUSY_TIMEOUT},
        "abort_foreign_transaction": {"type": "bool", "default": False},
        "verify_address": {"type": "str"},
        "bufsize": {"type": "int", "default": DEFAULT_BUFSIZE},
    }


CERT_MUTUALLY_EXCLUSIVE = [
    ("path", "certificates"),
    ("pem_src", "pem_content"),
    ("pem_src", "certificates"),
    ("pem_content", "certificates"),
]
CERT_REQUIRED_ONE_OF = [("path", "certificates")]


def info_argument_spec() -> dict[str, t.Any]:
    """Options of ``haproxy_runtime_cert_info``."""
    return {
        "socket": {"type": "str", "default": DEFAULT_SOCKET},
        "paths": {"type": "list", "elements": "str", "aliases": ["names"]},
        "expiring_within_days": {"type": "float"},
        "timeout": {"type": "float", "default": DEFAULT_TIMEOUT},
    }
