# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ACME profiles: names, what the directory offers, the line recorded in the bundle."""

from __future__ import annotations

import typing as t

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import profiles
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import ConfigError
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import parse_bundle
from tests.unit.plugins.module_utils._acme.bundles import make_bundle


@pytest.mark.parametrize(("value", "expected"), [
    (None, None), ("", None), ("classic", "classic"), ("tlsserver", "tlsserver"), ("short-lived_v2.1", "short-lived_v2.1"),
])
def test_check_name_accepts(value: t.Any, expected: str | None) -> None:
    assert profiles.check_name(value) == expected


@pytest.mark.parametrize("value", ["short lived", "a\nb", "classic\n", "-x", ".x", "x" * 65, 7, ["classic"], "é"])
def test_check_name_refuses(value: t.Any) -> None:
    with pytest.raises(ConfigError, match="invalid profile"):
        profiles.check_name(value, "shop")


@pytest.mark.parametrize(("meta", "expected"), [
    ({}, {}), ({"profiles": None}, {}), ({"profiles": ["classic"]}, {}),
    ({"profiles": {"classic": "90 days", "shortlived": "6 days"}}, {"classic": "90 days", "shortlived": "6 days"}),
])
def test_offered(meta: dict[str, t.Any], expected: dict[str, str]) -> None:
    assert profiles.offered(meta) == expected


def test_check_offered() -> None:
    meta = {"profiles": {"tlsserver": "", "classic": ""}}
    profiles.check_offered("classic", meta, "https://ca.test/dir")
    with pytest.raises(ConfigError, match=r"it offers: classic, tlsserver$"):
        profiles.check_offered("shortlived", meta, "https://ca.test/dir")
    with pytest.raises(ConfigError, match="offers no profiles"):
        profiles.check_offered("shortlived", {}, "https://ca.test/dir")


@pytest.mark.parametrize(("data", "expected"), [
    (None, None), (b"", None),
    (b"# acme-profile: shortlived\n-----BEGIN CERTIFICATE-----\n", "shortlived"),
    (b"# acme-profile: shortlived\r\n-----BEGIN CERTIFICATE-----\r\n", "shortlived"),
    (b"# note\n# acme-profile: classic\n-----BEGIN CERTIFICATE-----\n", "classic"),
    (b"-----BEGIN CERTIFICATE-----\n# acme-profile: classic\n", None),  # only before the first block
    (b"# acme-profile: bad name\n-----BEGIN CERTIFICATE-----\n", None),
])
def test_recorded(data: bytes | None, expected: str | None) -> None:
    assert profiles.recorded(data) == expected


def test_record_round_trip_keeps_the_bundle_parsable() -> None:
    bundle = make_bundle(["a.example"])
    assert profiles.record(bundle, None) == bundle
    recorded = profiles.record(bundle, "tlsserver")
    assert profiles.recorded(recorded) == "tlsserver"
    assert parse_bundle(recorded).info() == parse_bundle(bundle).info()
