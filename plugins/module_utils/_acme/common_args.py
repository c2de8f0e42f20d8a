# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The common ACME options (docs/modules.md) as a plain argument spec, and the client built from them.

No Ansible import: modules merge :func:`acme_argument_spec` into their own spec; the
host renewal job passes the same dictionary of values.
"""

from __future__ import annotations

import math
import typing as t

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _defaults
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import jws, transport
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.client import AcmeClient
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.directory import resolve_directory
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.transport import Transport
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import ConfigError
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._module import MissingLibrary

MUTUALLY_EXCLUSIVE = [("account_key_path", "account_key_content")]
REQUIRED_ONE_OF = [("account_key_path", "account_key_content")]
REQUIRED_TOGETHER = [("eab_kid", "eab_hmac_key")]


def acme_argument_spec() -> dict[str, dict[str, t.Any]]:
    """A fresh copy of the common options' spec (callers may change it)."""
    return {
        "directory": {"type": "str", "default": _defaults.DIRECTORY},
        "account_key_path": {"type": "path", "no_log": False},
        "account_key_content": {"type": "str", "no_log": True},
        "email": {"type": "str"},
        "terms_agreed": {"type": "bool", "default": False},
        "eab_kid": {"type": "str"},
        "eab_hmac_key": {"type": "str", "no_log": True},
        "validate_certs": {"type": "bool", "default": True},
        "ca_path": {"type": "path"},
        "request_timeout": {"type": "float", "default": _defaults.REQUEST_TIMEOUT},
    }


def transport_from_params(params: t.Mapping[str, t.Any], pool_size: int = 10,
                          session: t.Any = None) -> Transport:
    """The HTTP transport: TLS verification from ``validate_certs`` / ``ca_path``, the timeout."""
    value = params.get("request_timeout")
    try:  # 0 is refused, not taken for the default
        timeout = _defaults.REQUEST_TIMEOUT if value is None else float(value)
    except (TypeError, ValueError):
        timeout = math.nan
    if not timeout > 0 or math.isinf(timeout) or isinstance(value, bool):
        raise ConfigError(f"request_timeout must be a positive number of seconds, not {value!r}")
    verify: bool | str = bool(params.get("validate_certs", True))
    if verify and params.get("ca_path"):
        verify = str(params["ca_path"])
    return Transport(timeout=timeout, verify=verify, pool_size=pool_size, session=session)


def client_from_params(params: t.Mapping[str, t.Any], pool_size: int = 10, session: t.Any = None) -> AcmeClient:
    """An ACME client for the directory asked; the account key is loaded by the caller."""
    url = resolve_directory(params.get("directory"))
    return AcmeClient(url, transport_from_params(params, pool_size, session))


def missing_library(_params: t.Mapping[str, t.Any]) -> MissingLibrary | None:
    """The Python libraries this client needs that are not installed, for missing_required_lib."""
    missing = []
    if not jws.HAS_CRYPTOGRAPHY:
        missing.append("cryptography")
    if not transport.HAS_REQUESTS:
        missing.append("requests")
    return MissingLibrary(" and ".join(missing)) if missing else None
