# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures for the ACME client's unit tests: a fake clock and the in-process fake CA."""

from __future__ import annotations

import time
import typing as t

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.client import AcmeClient
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.transport import Clock, RetryPolicy, Transport
from tests.unit.plugins.module_utils._acme.fake_acme import DIRECTORY_URL, FakeAcme


class FakeClock(Clock):
    """Time moves only when the code sleeps; every sleep is recorded."""

    def __init__(self, start: float | None = None) -> None:
        self.t = time.time() if start is None else start  # wall clock: certificates are real
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.t += max(0.0, seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake() -> FakeAcme:
    return FakeAcme()


@pytest.fixture
def make_client(clock: FakeClock) -> t.Callable[..., AcmeClient]:
    def factory(session: t.Any, key: t.Any = None, retry: RetryPolicy | None = None) -> AcmeClient:
        transport = Transport(timeout=5, session=session, clock=clock, retry=retry)
        return AcmeClient(DIRECTORY_URL, transport, key=key or ec.generate_private_key(ec.SECP256R1()))

    return factory
