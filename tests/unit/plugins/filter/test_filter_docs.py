# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Each filter's DOCUMENTATION names the parameters of its function: the input as ``_input``,
every other parameter as an option, the positional ones in ``positional`` in their order,
and a parameter without a default as required. Its RETURN documents ``_value``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import types

import pytest
import yaml

from ansible_collections.tlsops.haproxy_acme.plugins import filter as filters

MODULES = sorted(m.name for m in pkgutil.iter_modules(filters.__path__))


@pytest.mark.parametrize("name", MODULES)
def test_documented_options_are_the_parameters(name: str) -> None:
    module: types.ModuleType = importlib.import_module(f"{filters.__name__}.{name}")
    doc = yaml.safe_load(module.DOCUMENTATION)
    assert doc["name"] == name
    function = module.FilterModule().filters()[name]
    _input, *rest = inspect.signature(function).parameters.values()
    options = doc.get("options") or {}
    assert sorted(options) == sorted(["_input", *(p.name for p in rest)])
    assert options["_input"].get("required") is True
    positional = [p.name for p in rest if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    documented = [word.strip() for word in (doc.get("positional") or "").split(",") if word.strip()]
    assert documented == positional[:len(documented)], "positional must follow the function's order"
    for parameter in rest:
        if parameter.default is inspect.Parameter.empty:
            assert options[parameter.name].get("required") is True, f"{parameter.name} has no default"
    assert set(yaml.safe_load(module.RETURN)) == {"_value"}
