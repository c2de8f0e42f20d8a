# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""acme_account's key rollover through its real main(), the HTTP session replaced by the fake CA."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import jws
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import load_private_key
from tests.unit.conftest import ModuleMain
from tests.unit.plugins.module_utils._acme.fake_acme import FakeAcme
from tests.unit.plugins.modules.test_acme_account import fake, run

__all__ = ["fake"]


def test_rollover_check_real_rerun_and_after_the_swap(
    fake: FakeAcme, module_main: ModuleMain, tmp_path: Path
) -> None:
    key_path, next_path = tmp_path / "account.key", tmp_path / "account.key.next"
    created = run(module_main, account_key_path=str(key_path), terms_agreed=True)
    old_tp, uri = created["thumbprint"], created["account_uri"]
    args = {"account_key_path": str(key_path), "new_account_key_path": str(next_path)}

    check = run(module_main, **args, _ansible_check_mode=True)
    assert check["changed"] and check["rolled_over"] and check["new_key_created"]
    assert check["old_thumbprint"] == old_tp and check["new_thumbprint"] is None and check["thumbprint"] is None
    assert not next_path.exists() and fake.key_changes == []

    done = run(module_main, **args)
    new_tp = jws.thumbprint(load_private_key(next_path.read_bytes()))
    assert done["changed"] and done["rolled_over"] and done["new_key_created"]
    assert (done["old_thumbprint"], done["new_thumbprint"], done["thumbprint"]) == (old_tp, new_tp, new_tp)
    assert done["account_uri"] == uri and len(fake.key_changes) == 1
    assert stat.S_IMODE(os.stat(next_path).st_mode) == 0o600
    assert "PRIVATE KEY" not in json.dumps(done)

    for check_mode in (True, False):  # the same task again: the CA says it is done
        again = run(module_main, **args, _ansible_check_mode=check_mode)
        assert not again["changed"] and not again["rolled_over"] and not again["new_key_created"]
        assert (again["thumbprint"], again["account_uri"]) == (new_tp, uri)
    assert len(fake.key_changes) == 1

    key_path.write_bytes(next_path.read_bytes())  # the new key moved into place
    swapped = run(module_main, **args)
    assert not swapped["changed"] and swapped["old_thumbprint"] == swapped["new_thumbprint"] == new_tp
    plain = run(module_main, account_key_path=str(key_path))
    assert not plain["changed"] and plain["thumbprint"] == new_tp and plain["account_uri"] == uri
    assert plain["rolled_over"] is False and plain["old_thumbprint"] is None


def test_rollover_with_contents_and_a_new_contact(fake: FakeAcme, module_main: ModuleMain,
                                                  tmp_path: Path) -> None:
    key_path = tmp_path / "account.key"
    run(module_main, account_key_path=str(key_path), terms_agreed=True)
    new = tmp_path / "new.key"
    run(module_main, account_key_path=str(new), terms_agreed=True)  # another account's key
    result = run(module_main, account_key_content=key_path.read_text(), new_account_key_content=new.read_text())
    assert result["failed"] and "already belongs to another account" in result["msg"]
    assert "BEGIN" not in json.dumps(result)

    fresh = tmp_path / "fresh.key"
    done = run(module_main, account_key_content=key_path.read_text(), new_account_key_path=str(fresh),
               email="new@example.com")
    assert done["changed"] and done["rolled_over"] and done["contact"] == ["mailto:new@example.com"]


@pytest.mark.parametrize(("extra", "message"), [
    ({"state": "absent"}, "new_account_key_path and new_account_key_content roll an account over: they need state: present"),
    ({"account_key_path": "/nonexistent/account.key"}, "account key /nonexistent/account.key does not exist"),
    ({"new_account_key_content": "nope", "new_account_key_path": None},
     "new_account_key_content: no PEM private key found"),
])
def test_rollover_errors(fake: FakeAcme, module_main: ModuleMain, tmp_path: Path,
                         extra: dict[str, object], message: str) -> None:
    key_path = tmp_path / "account.key"
    run(module_main, account_key_path=str(key_path), terms_agreed=True)
    args = {"account_key_path": str(key_path), "new_account_key_path": str(tmp_path / "next.key"), **extra}
    result = run(module_main, **{k: v for k, v in args.items() if v is not None})
    assert result["failed"] and result["msg"].startswith(message), result["msg"]
    assert fake.key_changes == []
