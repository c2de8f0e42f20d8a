# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Polling an order or authorization until it leaves a transient state (RFC 8555 section 7.5.1).

No fixed multi-second sleeps: the first re-check comes after 10 ms and the interval
doubles up to a cap, so a fast CA answers in a few tens of milliseconds while a slow
one is not hammered. A ``Retry-After`` from the server always wins.
"""

from __future__ import annotations

import typing as t

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.transport import Clock, Response
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import AcmeTimeout

FIRST_INTERVAL = 0.01
MAX_INTERVAL = 2.0


class Poller:
    """Re-fetch a resource until ``done(data)`` holds, within ``timeout`` seconds."""

    def __init__(self, clock: Clock, timeout: float, first: float = FIRST_INTERVAL, cap: float = MAX_INTERVAL) -> None:
        self.clock = clock
        self.timeout = timeout
        self.first = first
        self.cap = cap

    def until(
        self,
        fetch: t.Callable[[], Response],
        done: t.Callable[[dict[str, t.Any]], bool],
        what: str,
        first: Response | None = None,
        **context: t.Any,
    ) -> dict[str, t.Any]:
        """The resource's JSON once ``done``; AcmeTimeout naming ``what`` otherwise."""
        deadline = self.clock.monotonic() + self.timeout
        interval = self.first
        response = first if first is not None else fetch()
        while True:
            data = response.json()
            if done(data):
                return data
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                raise AcmeTimeout(
                    f"{what} is still {data.get('status', '?')!r} after {self.timeout:g} s (poll_timeout)", **context
                )
            wait = response.retry_after(self.clock.now())
            self.clock.sleep(min(remaining, wait if wait is not None else interval))
            interval = min(self.cap, interval * 2)
            response = fetch()
