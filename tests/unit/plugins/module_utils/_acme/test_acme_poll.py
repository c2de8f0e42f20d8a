# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Polling: 10 ms doubling up to a cap, Retry-After wins, bounded by the timeout."""

from __future__ import annotations

import json
import typing as t

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.poll import Poller
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.transport import Response
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import AcmeTimeout
from tests.unit.plugins.module_utils._acme.conftest import FakeClock


def answers(*items: tuple[str, str | None]) -> t.Callable[[], Response]:
    queue = list(items)

    def fetch() -> Response:
        status, retry_after = queue.pop(0)
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return Response(200, headers, json.dumps({"status": status}).encode(), "https://ca.test/o")

    return fetch


def settled(data: dict[str, t.Any]) -> bool:
    return data["status"] not in ("pending", "processing")


@pytest.mark.parametrize(("items", "sleeps"), [
    pytest.param([("valid", None)], [], id="already-done"),
    pytest.param([("pending", None)] * 3 + [("valid", None)], [0.01, 0.02, 0.04], id="doubling"),
    pytest.param([("pending", None)] * 10 + [("valid", None)],
                 [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.0, 2.0], id="capped"),
    pytest.param([("processing", "3"), ("processing", None), ("valid", None)], [3.0, 0.02], id="retry-after-wins"),
    pytest.param([("pending", "0"), ("invalid", None)], [0.0], id="retry-after-zero"),
])
def test_poll_intervals(clock: FakeClock, items: list[tuple[str, str | None]], sleeps: list[float]) -> None:
    data = Poller(clock, timeout=60).until(answers(*items), settled, "the order")
    assert data["status"] == items[-1][0]
    assert clock.sleeps == sleeps


def test_poll_timeout_names_what_and_state(clock: FakeClock) -> None:
    poller = Poller(clock, timeout=1)
    with pytest.raises(AcmeTimeout, match=r"the authorization is still 'pending' after 1 s \(poll_timeout\)") as info:
        poller.until(answers(*[("pending", None)] * 100), settled, "the authorization", certificate="web")
    assert info.value.context == {"certificate": "web"}
    assert sum(clock.sleeps) <= 1.0 + 1e-9


def test_long_retry_after_is_cut_to_the_deadline(clock: FakeClock) -> None:
    with pytest.raises(AcmeTimeout):
        Poller(clock, timeout=5).until(answers(("processing", "3600"), ("processing", None)), settled, "the order")
    assert clock.sleeps == [5.0]
