# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What every module test shares: a module run through its real ``main()``.

``module_main(module, **options)`` hands the options to the module as Ansible would
(``patch_module_args``, which puts the previous arguments back afterwards, so no test
sees another's), runs ``main()`` and returns the JSON result it printed.

Ansible is imported only when a test asks for the fixture: the module_utils tests
also run under the distribution's Python, which has no ansible-core (stage unit_distro).
"""

from __future__ import annotations

import contextlib
import json
import types
import typing as t

import pytest

ModuleMain = t.Callable[..., t.Dict[str, t.Any]]


@contextlib.contextmanager
def _module_args(options: dict[str, t.Any]) -> t.Iterator[None]:
    try:
        from ansible.module_utils.testing import patch_module_args
    except ImportError:  # ansible-core < 2.19
        from ansible.module_utils import basic

        old = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": options}).encode()
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = old
    else:
        with patch_module_args(options):
            yield


@pytest.fixture
def module_main(capsys: pytest.CaptureFixture[str]) -> ModuleMain:
    def main(module: types.ModuleType, **options: t.Any) -> dict[str, t.Any]:
        with _module_args(options), pytest.raises(SystemExit):
            module.main()
        return t.cast(t.Dict[str, t.Any], json.loads(capsys.readouterr().out))

    return main
