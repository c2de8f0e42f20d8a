# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Each module's documented attributes: the action groups are those of meta/runtime.yml, and
check_mode, diff_mode and idempotent each say how far the module supports them."""

from __future__ import annotations

import importlib
import pkgutil
import typing as t
from pathlib import Path

import pytest
import yaml

from ansible_collections.tlsops.haproxy_acme.plugins import modules
from ansible_collections.tlsops.haproxy_acme.plugins.doc_fragments.attributes import ModuleDocFragment

ROOT = Path(__file__).resolve().parents[4]
COLLECTION = "tlsops.haproxy_acme"
NAMES = sorted(m.name for m in pkgutil.iter_modules(modules.__path__))


def _documentation(name: str) -> dict[str, t.Any]:
    return t.cast(t.Dict[str, t.Any], yaml.safe_load(importlib.import_module(f"{modules.__name__}.{name}").DOCUMENTATION))


def _fragment_attributes(doc: dict[str, t.Any]) -> dict[str, t.Any]:
    """The attributes the module's fragments of tlsops.haproxy_acme.attributes add."""
    merged: dict[str, t.Any] = {}
    for fragment in doc.get("extends_documentation_fragment", []):
        if not fragment.startswith(f"{COLLECTION}.attributes"):
            continue
        variable = fragment.rpartition(".")[2].upper() if fragment.count(".") == 3 else "DOCUMENTATION"
        merged.update(yaml.safe_load(getattr(ModuleDocFragment, variable))["attributes"])
    return merged


def test_every_module_is_in_an_action_group() -> None:
    groups = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())["action_groups"]
    assert sorted({m for members in groups.values() for m in members}) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_action_group_membership_is_that_of_runtime_yml(name: str) -> None:
    groups = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())["action_groups"]
    expected = sorted(f"{COLLECTION}.{group}" for group, members in groups.items() if name in members)
    attributes = _fragment_attributes(_documentation(name))
    assert sorted(attributes["action_group"]["membership"]) == expected


@pytest.mark.parametrize("name", NAMES)
def test_check_diff_and_idempotence_are_stated(name: str) -> None:
    doc = _documentation(name)
    assert f"{COLLECTION}.attributes" in doc["extends_documentation_fragment"]
    for attribute in ("check_mode", "diff_mode", "idempotent"):
        assert doc["attributes"][attribute]["support"] in ("full", "partial", "none", "N/A"), attribute
    assert "platform" in _fragment_attributes(doc)
    source = Path(importlib.import_module(f"{modules.__name__}.{name}").__file__ or "").read_text()
    if doc["attributes"]["check_mode"]["support"] != "none":
        assert "supports_check_mode=True" in source
