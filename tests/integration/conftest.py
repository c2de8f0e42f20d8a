"""Fixtures that start the real lab (pebble, challtestsrv, HAProxy) for integration tests."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest

from tests.lab.lab import Lab, LabInfo


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[LabInfo]:
    """One lab for the whole session, with steady defaults (no nonce rejection, no authz reuse)."""
    with Lab(tmp_path_factory.mktemp("lab")) as info:
        yield info


@pytest.fixture
def make_lab(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[t.Callable[..., Lab]]:
    """Start a lab with custom knobs: ``make_lab(nonce_reject=30)``; returns the running Lab."""
    started: list[Lab] = []

    def factory(**knobs: t.Any) -> Lab:
        lab = Lab(Path(tmp_path_factory.mktemp("lab")), **knobs)
        started.append(lab)
        lab.start()
        return lab

    yield factory
    for lab in started:
        lab.stop()
