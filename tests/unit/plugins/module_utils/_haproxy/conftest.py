# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures of the HAProxy tests: a certificate directory and a fake stats socket serving it."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest

from tests.unit.plugins.module_utils._haproxy.fake_haproxy import FakeHaproxy


@pytest.fixture
def certdir(tmp_path: Path) -> Path:
    path = tmp_path / "certs"
    path.mkdir()
    return path


@pytest.fixture
def fake(tmp_path: Path, certdir: Path) -> t.Iterator[FakeHaproxy]:
    with FakeHaproxy(tmp_path, crt_dir=str(certdir)) as server:
        yield server
