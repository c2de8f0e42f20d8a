# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The roles' defaults agree with the modules' (_defaults.py), setting by setting.

YAML cannot import Python, so each role writes the values it shares with the modules
once more, in its ``defaults/main.yml`` (or as the fallback of a ``default(...)`` filter
there, when the value comes from another role's variable first). This table names each
such setting and the module default it must equal; tests/unit/test_role_specs.py holds
the roles' ``meta/argument_specs.yml`` to their ``defaults/main.yml``.
"""

from __future__ import annotations

import re
import typing as t
from pathlib import Path

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _defaults
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.directory import ALIASES
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.maps import thumbprint_argument_spec
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.module_args import (
    cert_argument_spec,
    info_argument_spec,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import KEY_TYPES

yaml = pytest.importorskip("yaml")

ROLES = Path(__file__).resolve().parents[4] / "roles"
_FALLBACK = re.compile(r"\|\s*default\('([^']*)'\)\s*}}$")

# (role, variable, the module default it must equal)
SHARED: list[tuple[str, str, t.Any]] = [
    ("renewal_timer", "renewal_timer_key_type", _defaults.KEY_TYPE),
    ("renewal_timer", "renewal_timer_cert_mode", _defaults.mode_text(_defaults.BUNDLE_MODE)),
    ("renewal_timer", "renewal_timer_directory", _defaults.DIRECTORY),
    ("renewal_timer", "renewal_timer_socket", _defaults.SOCKET),
    ("haproxy", "haproxy_stats_socket", _defaults.SOCKET),
    ("haproxy_acme", "haproxy_acme_directory", _defaults.DIRECTORY),
    ("haproxy_acme", "haproxy_acme_account_key_type", _defaults.KEY_TYPE),
    ("haproxy_acme", "haproxy_acme_concurrency", _defaults.CONCURRENCY),
]


def role_file(role: str, *parts: str) -> t.Any:
    return yaml.safe_load((ROLES / role).joinpath(*parts).read_text(encoding="utf-8"))


def own_value(value: t.Any) -> t.Any:
    """The role's own value: the fallback of ``{{ other_role_var | default('...') }}``, else the value."""
    match = _FALLBACK.search(value) if isinstance(value, str) else None
    return match.group(1) if match else value


@pytest.mark.parametrize(("role", "variable", "expected"), SHARED, ids=[v for _r, v, _e in SHARED])
def test_role_default_is_the_module_default(role: str, variable: str, expected: t.Any) -> None:
    defaults = role_file(role, "defaults", "main.yml")
    assert own_value(defaults[variable]) == expected


def test_thumbprint_map_is_where_the_haproxy_role_puts_it() -> None:
    maps_dir = role_file("haproxy", "defaults", "main.yml")["haproxy_maps_dir"]
    path = role_file("haproxy", "vars", "main.yml")["_haproxy_thumbprint_map"]
    assert path.replace("{{ haproxy_maps_dir }}", maps_dir) == _defaults.MAP_PATH


def test_module_specs_read_the_defaults() -> None:
    cert, shown, thumbprint = cert_argument_spec(), info_argument_spec(), thumbprint_argument_spec()
    assert cert["socket"]["default"] == shown["socket"]["default"] == thumbprint["socket"]["default"]
    assert cert["socket"]["default"] == [_defaults.SOCKET]
    assert cert["mode"]["default"] == "0640"
    assert thumbprint["mode"]["default"] == "0644"
    assert thumbprint["path"]["default"] == _defaults.MAP_PATH


def test_defaults_are_values_the_code_takes() -> None:
    assert _defaults.KEY_TYPE in KEY_TYPES
    assert _defaults.DIRECTORY in ALIASES
    assert 1 <= _defaults.CONCURRENCY <= _defaults.MAX_CONCURRENCY
    assert _defaults.mode_text(_defaults.ACCOUNT_KEY_MODE) == "0600"
