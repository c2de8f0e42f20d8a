# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""acme_account through its real main(), the HTTP session replaced by the fake CA."""

from __future__ import annotations

import json
import os
import stat
import typing as t
from pathlib import Path

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import jws
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.transport import Transport
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import load_private_key
from ansible_collections.tlsops.haproxy_acme.plugins.modules import acme_account
from tests.unit.conftest import ModuleMain
from tests.unit.plugins.module_utils._acme.fake_acme import DIRECTORY_URL, FakeAcme


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeAcme:
    ca = FakeAcme()
    monkeypatch.setattr(Transport, "_new_session", staticmethod(lambda verify, pool_size: ca))
    return ca


def run(module_main: ModuleMain, **args: t.Any) -> dict[str, t.Any]:
    args.setdefault("directory", DIRECTORY_URL)
    return module_main(acme_account, **args)


def test_four_runs_create_the_key_and_the_account(
    fake: FakeAcme, module_main: ModuleMain, tmp_path: Path
) -> None:
    key_path = str(tmp_path / "account.key")
    args = {"account_key_path": key_path, "terms_agreed": True, "email": "ops@example.com"}

    check = run(module_main, _ansible_check_mode=True, **args)
    assert check["changed"] and check["key_created"] and check["account_uri"] is None
    assert not os.path.exists(key_path) and fake.requests == []

    real = run(module_main, **args)
    assert real["changed"] and real["key_created"] and real["status"] == "valid"
    assert real["contact"] == ["mailto:ops@example.com"]
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    key = load_private_key(Path(key_path).read_bytes())
    assert real["thumbprint"] == jws.thumbprint(key)
    assert "BEGIN" not in json.dumps(real)

    again_check = run(module_main, _ansible_check_mode=True, **args)
    again = run(module_main, **args)
    for result in (again_check, again):
        assert not result["changed"] and result["account_uri"] == real["account_uri"]
        assert result["thumbprint"] == real["thumbprint"] and not result["key_created"]
    assert len(fake.accounts) == 1


def test_contact_update_and_deactivation(fake: FakeAcme, module_main: ModuleMain, tmp_path: Path) -> None:
    key_path = str(tmp_path / "account.key")
    base = {"account_key_path": key_path, "terms_agreed": True}
    run(module_main, **base, email="a@example.com")
    check = run(module_main, **base, email="b@example.com", _ansible_check_mode=True)
    assert check["changed"] and check["contact"] == ["mailto:b@example.com"]
    assert next(iter(fake.accounts.values()))["body"]["contact"] == ["mailto:a@example.com"]
    updated = run(module_main, **base, email="b@example.com")
    assert updated["changed"] and updated["contact"] == ["mailto:b@example.com"]
    assert not run(module_main, **base)["changed"]  # no email: contact left alone

    gone_check = run(module_main, **base, state="absent", _ansible_check_mode=True)
    assert gone_check["changed"] and gone_check["status"] == "deactivated"
    assert next(iter(fake.accounts.values()))["status"] == "valid"
    gone = run(module_main, **base, state="absent")
    assert gone["changed"] and gone["status"] == "deactivated"
    assert not run(module_main, **base, state="absent")["changed"]
    failed = run(module_main, **base)
    assert failed["failed"] and "deactivated" in failed["msg"]


def test_absent_without_key_file_is_a_no_op(fake: FakeAcme, module_main: ModuleMain, tmp_path: Path) -> None:
    result = run(module_main, account_key_path=str(tmp_path / "none.key"), state="absent")
    assert not result["changed"] and result["account_uri"] is None
    assert not (tmp_path / "none.key").exists() and fake.requests == []


def test_key_content_is_never_logged(fake: FakeAcme, module_main: ModuleMain, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import private_key_to_pem

    pem = private_key_to_pem(ec.generate_private_key(ec.SECP256R1())).decode()
    result = run(module_main, account_key_content=pem, terms_agreed=True)
    assert result["changed"] and result["account_uri"]
    assert "PRIVATE KEY" not in json.dumps(result)


@pytest.mark.parametrize(("args", "message"), [
    ({"directory": "letsencrypt-staging"}, "unknown ACME directory 'letsencrypt-staging'"),
    ({"terms_agreed": False}, "set terms_agreed: true"),
    ({"eab_kid": "kid"}, "parameters are required together: eab_kid, eab_hmac_key"),
])
def test_errors(fake: FakeAcme, module_main: ModuleMain, tmp_path: Path, args: dict[str, t.Any],
                message: str) -> None:
    result = run(module_main, account_key_path=str(tmp_path / "k.key"), **args)
    assert result["failed"] and message in result["msg"]
    assert "Traceback" not in json.dumps(result)


def test_wrong_key_file(fake: FakeAcme, module_main: ModuleMain, tmp_path: Path) -> None:
    bad = tmp_path / "k.key"
    bad.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    result = run(module_main, account_key_path=str(bad))
    assert result["failed"] and result["msg"] == f"account key {bad}: no PEM private key found"
