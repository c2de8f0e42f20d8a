# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""How the fleet rules copy what Ansible hands them: variables rendered on access, module results as stored."""

from __future__ import annotations

import typing as t

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _fleet


class Rendering(dict):  # type: ignore[type-arg]
    """Like ansible-core 2.19's lazy containers: a dict whose values are rendered on access."""

    def __getitem__(self, key: t.Any) -> t.Any:
        return _render(dict.__getitem__(self, key))

    def get(self, key: t.Any, default: t.Any = None) -> t.Any:
        return self[key] if key in self else default  # noqa: SIM401 - get() is what is defined here

    def items(self) -> t.Any:  # type: ignore[override]
        return [(k, _render(v)) for k, v in dict.items(self)]

    def values(self) -> t.Any:  # type: ignore[override]
        return [_render(v) for v in dict.values(self)]


class RenderingList(list):  # type: ignore[type-arg]
    def __iter__(self) -> t.Iterator[t.Any]:
        return (_render(v) for v in list.__iter__(self))


def _render(value: t.Any) -> t.Any:
    return "rendered" if value == "{{ template }}" else value


CASES: list[t.Any] = [
    pytest.param({"a": 1, "b": [1, 2]}, {"a": 1, "b": [1, 2]}, {"a": 1, "b": [1, 2]}, id="plain-data"),
    pytest.param(Rendering({"a": "{{ template }}"}), {"a": "rendered"}, {"a": "{{ template }}"}, id="lazy-dict"),
    pytest.param(RenderingList(["{{ template }}", 2]), ["rendered", 2], ["{{ template }}", 2], id="lazy-list"),
    pytest.param(Rendering({"x": RenderingList([Rendering({"k": "{{ template }}"})])}), {"x": [{"k": "rendered"}]},
                 {"x": [{"k": "{{ template }}"}]}, id="nested"),
    pytest.param(("a", {"b": (1,)}), ["a", {"b": [1]}], ["a", {"b": [1]}], id="tuples-become-lists"),
    pytest.param({1: "one"}, {"1": "one"}, {"1": "one"}, id="keys-as-text"),
]


@pytest.mark.parametrize(("given", "rendered", "stored"), CASES)
def test_plain_renders_and_data_copy_reads_as_stored(given: t.Any, rendered: t.Any, stored: t.Any) -> None:
    assert _fleet.plain(given) == rendered
    assert _fleet.data_copy(given) == stored
    copy = _fleet.data_copy(given)
    assert type(copy) in (dict, list)  # plain containers, not the caller's


def test_node_renders_the_certificates_variable_and_copies_results_as_stored() -> None:
    host_vars = Rendering({
        "wanted": RenderingList([Rendering({"name": "a", "domains": RenderingList(["{{ template }}"])})]),
        "served": Rendering({"certificates": [{"path": "/c/a.pem", "serial": "{{ template }}"}], "process": {"pid": 7}}),
    })
    node = _fleet.node("n1", host_vars, certificates="wanted", served="served")
    assert node["certificates"] == [{"name": "a", "domains": ["rendered"]}]
    assert node["served"] == [{"path": "/c/a.pem", "serial": "{{ template }}"}]  # a module's data: never rendered
    assert node["answered"] is True and node["process"] == {"pid": 7}
