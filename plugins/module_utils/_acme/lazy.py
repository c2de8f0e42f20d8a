# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A value computed once, on first need, by whichever thread asks first."""

from __future__ import annotations

import threading
import typing as t

T = t.TypeVar("T")


class Lazy(t.Generic[T]):
    """Runs ``make`` once; later callers get its value, or the same exception again."""

    def __init__(self, make: t.Callable[[], T]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._done = False
        self._value: T | None = None
        self._error: BaseException | None = None

    def get(self) -> T:
        with self._lock:
            if not self._done:
                try:
                    self._value = self._make()
                except Exception as exc:  # re-raised to every caller
                    self._error = exc
                self._done = True
        if self._error is not None:
            raise self._error
        return t.cast(T, self._value)
