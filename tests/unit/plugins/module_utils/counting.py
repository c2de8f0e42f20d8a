# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Counting calls of a function a module uses, for tests that show work was not done."""

from __future__ import annotations

import typing as t

import pytest


def count_calls(monkeypatch: pytest.MonkeyPatch, owner: t.Any, name: str) -> list[int]:
    """Replace ``owner.name`` for the test with a wrapper that appends to the list returned."""
    calls: list[int] = []
    real = getattr(owner, name)

    def counting(*args: t.Any, **kwargs: t.Any) -> t.Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, counting)
    return calls
