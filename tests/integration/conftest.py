"""Fixtures that start the real lab (pebble, challtestsrv, HAProxy) for integration tests."""

from __future__ import annotations

import os
import typing as t
from pathlib import Path

import pytest

from tests.lab.lab import PEBBLE_ENV, Lab, LabInfo, find_pebble


def pytest_report_header(config: pytest.Config) -> str:
    """Which pebble the labs run (``TLSOPS_LAB_PEBBLE``: system, a version such as 2.10, or a path)."""
    try:
        build = find_pebble()
    except RuntimeError as exc:
        return f"lab pebble: {exc}"
    return f"lab pebble: {build.release} ({build.pebble}; {PEBBLE_ENV}={os.environ.get(PEBBLE_ENV, '')!r})"


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[LabInfo]:
    """One lab for the whole session, with steady defaults (no nonce rejection, no authz reuse),
    on the pebble build ``TLSOPS_LAB_PEBBLE`` names (default: the system one)."""
    with Lab(tmp_path_factory.mktemp("lab")) as info:
        yield info


@pytest.fixture
def make_lab(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[t.Callable[..., Lab]]:
    """Start a lab with custom knobs: ``make_lab(nonce_reject=30)``; returns the running Lab.

    Without ``pebble=``, it runs the build ``TLSOPS_LAB_PEBBLE`` names, as ``lab`` does."""
    started: list[Lab] = []

    def factory(**knobs: t.Any) -> Lab:
        lab = Lab(Path(tmp_path_factory.mktemp("lab")), **knobs)
        started.append(lab)
        lab.start()
        return lab

    yield factory
    for lab in started:
        lab.stop()
