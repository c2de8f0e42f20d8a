# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The report's "due" state: the time part of the renewal rule on served dates."""

from __future__ import annotations

import datetime as dt
import typing as t

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.tlsops.haproxy_acme.plugins.filter.renewal_due import FilterModule, renewal_due


def _served(lifetime: float, left: float) -> dict[str, t.Any]:
    now = dt.datetime.now(dt.timezone.utc)
    not_after = now + dt.timedelta(days=left)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return {"not_before": (not_after - dt.timedelta(days=lifetime)).strftime(fmt), "not_after": not_after.strftime(fmt)}


@pytest.mark.parametrize(("lifetime", "left", "remaining", "due"), [
    (90, 31, None, False), (90, 29, None, True), (90, 29, "", True), (45, 16, None, False), (45, 14, None, True),
    (6, 3.5, None, False), (6, 2.5, None, True), (90, 40, 45, True), (90, 40, "45", True), (6, 5, 30, False),
    (64, 20, None, True),
])
def test_renewal_due(lifetime: float, left: float, remaining: t.Any, due: bool) -> None:
    assert renewal_due(_served(lifetime, left), remaining) is due


def test_unknown_dates_are_not_due() -> None:
    assert renewal_due({"not_before": None, "not_after": None}) is False


def test_not_a_dict() -> None:
    with pytest.raises(AnsibleFilterError):
        renewal_due("x")


def test_registered() -> None:
    assert FilterModule().filters()["renewal_due"] is renewal_due
