# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What every module's ``run()`` returns, and the ``main()`` the modules share.

A run function takes the module's options as a plain mapping and ``check_mode``, and
returns a :class:`RunResult`. What makes a whole run impossible before anything
changed (a bad option, an unreachable socket) it raises as a HaproxyAcmeError; what
fails part-way (one certificate of ten) is the result's ``failure``, beside fields
that still say what was done. The host renewal job calls the same functions.

No Ansible import here (the import contracts in pyproject.toml): a module passes its
``ansible.module_utils.basic`` in.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import HaproxyAcmeError


@dataclass
class RunResult:
    """``result``: the module's return values, ``changed`` among them and ``diff`` when
    it shows one; ``failure``: the message of a run that failed part-way, else None;
    ``warnings``: for Ansible to show."""

    result: dict[str, t.Any]
    failure: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.result.get("changed"))


@dataclass(frozen=True)
class MissingLibrary:
    """A Python library the run needs and this host lacks, for missing_required_lib."""

    library: str
    reason: str | None = None
    traceback: str | None = None


Run = t.Callable[..., RunResult]
Missing = t.Callable[[t.Mapping[str, t.Any]], t.Optional[MissingLibrary]]


def run_module(basic: t.Any, run: Run, missing: Missing | None = None, **module_args: t.Any) -> None:
    """Build the AnsibleModule (``module_args``: argument_spec, supports_check_mode...),
    refuse a missing library, call ``run`` and exit or fail.

    ``basic`` is ``ansible.module_utils.basic``, which the module imports. Never returns.
    """
    module = basic.AnsibleModule(**module_args)
    lacking = missing(module.params) if missing is not None else None
    if lacking is not None:
        module.fail_json(msg=basic.missing_required_lib(lacking.library, reason=lacking.reason),
                         exception=lacking.traceback)
    try:
        outcome = run(module.params, check_mode=module.check_mode)
    except HaproxyAcmeError as exc:
        module.fail_json(**exc.as_result())
    for warning in outcome.warnings:
        module.warn(warning)
    result = dict(outcome.result)
    if not module._diff:
        result.pop("diff", None)
    if outcome.failure:
        module.fail_json(msg=outcome.failure, **result)
    module.exit_json(**result)
