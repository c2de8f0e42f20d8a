# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every role's ``meta/argument_specs.yml`` against its ``defaults/main.yml``, and the
haproxy_acme role's spec against the variables its tasks read.

``ansible-doc -t role`` shows the spec's defaults; Ansible applies those of
``defaults/main.yml``. They must say the same. A default the spec leaves out is one
computed from other variables (a template), described in words instead.
"""

from __future__ import annotations

import re
import typing as t
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(path.parent.parent.name for path in (ROOT / "roles").glob("*/meta/argument_specs.yml"))
# haproxy_acme_* names that are not inputs of the role: what it hands to the haproxy role
# (haproxy_acme_thumbprint) and the job artifact it writes (set_stats: haproxy_acme_fleet).
NOT_READ = {"haproxy_acme_thumbprint", "haproxy_acme_fleet"}
# Read by the playbooks (their hosts:), not by the role's tasks.
PLAYBOOK_ONLY = {"haproxy_acme_hosts"}
_NAME = re.compile(r"(?<![.\w])haproxy_acme_[a-z0-9_]+")


def _yaml(path: Path) -> t.Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def spec_options(role: str) -> dict[str, dict[str, dict[str, t.Any]]]:
    """{entry point: {option: its spec}}."""
    specs = _yaml(ROOT / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]
    return {entry: dict(spec.get("options") or {}) for entry, spec in specs.items()}


def role_defaults(role: str) -> dict[str, t.Any]:
    return dict(_yaml(ROOT / "roles" / role / "defaults" / "main.yml") or {})


def default_problems(options: dict[str, dict[str, dict[str, t.Any]]], defaults: dict[str, t.Any]) -> list[str]:
    """What disagrees between a role's spec and its defaults file; empty when all agree."""
    problems = []
    documented = set()
    for entry, opts in options.items():
        for name, spec in opts.items():
            documented.add(name)
            computed = defaults.get(name) is None or "{{" in str(defaults.get(name))
            if "default" in spec and (name not in defaults or spec["default"] != defaults[name]):
                problems.append(f"{entry}: {name} defaults to {spec['default']!r} in the spec, "
                                f"{defaults.get(name, '(nothing)')!r} in defaults/main.yml")
            elif "default" not in spec and not computed:
                problems.append(f"{entry}: {name} has no default in the spec, {defaults[name]!r} in defaults/main.yml")
    problems += [f"{name} is in defaults/main.yml, in no entry point of the spec"
                 for name in sorted(set(defaults) - documented)]
    return problems


@pytest.mark.parametrize("role", ROLES)
def test_spec_defaults_are_the_role_defaults(role: str) -> None:
    assert default_problems(spec_options(role), role_defaults(role)) == []


def test_the_comparison_finds_a_mismatch() -> None:
    options = {"main": {"r_a": {"type": "str", "default": "x"}, "r_b": {"type": "int"},
                        "r_c": {"type": "str"}, "r_d": {"type": "str", "default": "d"}}}
    defaults = {"r_a": "y", "r_b": 3, "r_c": "{{ other }}", "r_d": "d", "r_e": 1}
    assert default_problems(options, defaults) == [
        "main: r_a defaults to 'x' in the spec, 'y' in defaults/main.yml",
        "main: r_b has no default in the spec, 3 in defaults/main.yml",
        "r_e is in defaults/main.yml, in no entry point of the spec",
    ]


def test_an_option_two_roles_document_has_one_type() -> None:
    """haproxy_acme documents the variables it reads of the roles it runs; their types must agree."""
    types: dict[str, dict[str, str]] = {}
    for role in ROLES:
        for opts in spec_options(role).values():
            for name, spec in opts.items():
                types.setdefault(name, {})[role] = spec.get("type", "str")
    assert {name: by_role for name, by_role in types.items() if len(set(by_role.values())) > 1} == {}


def variables_read(role_dir: Path) -> set[str]:
    """The public haproxy_acme_* names in the role's tasks and templates, comments left out."""
    names: set[str] = set()
    for path in sorted((role_dir / "tasks").glob("*.yml")) + sorted((role_dir / "templates").glob("*")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.lstrip().startswith("#"):
                names.update(_NAME.findall(line))
    return names - NOT_READ


def test_the_spec_documents_every_variable_the_tasks_read() -> None:
    read = variables_read(ROOT / "roles" / "haproxy_acme")
    documented = {name for opts in spec_options("haproxy_acme").values() for name in opts}
    assert len(read) > 15, read
    assert sorted(read - documented) == [], "read by the tasks, missing from meta/argument_specs.yml"
    own = {name for name in documented if name.startswith("haproxy_acme_")}
    assert sorted(own - read - PLAYBOOK_ONLY) == [], "in meta/argument_specs.yml, read by no task"


def test_main_is_site() -> None:
    options = spec_options("haproxy_acme")
    assert options["main"] == options["site"]
