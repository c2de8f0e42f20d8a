# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""acme_revoke through its real main(), the HTTP session replaced by the fake CA."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.client import AcmeClient
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.transport import Transport
from ansible_collections.tlsops.haproxy_acme.plugins.modules import acme_revoke
from tests.unit.conftest import ModuleMain
from tests.unit.plugins.module_utils._acme.conftest import FakeClock
from tests.unit.plugins.module_utils._acme.fake_acme import DIRECTORY_URL, FakeAcme
from tests.unit.plugins.module_utils._acme.test_acme_revoke_client import Issued, key_pem


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeAcme:
    ca = FakeAcme()
    monkeypatch.setattr(Transport, "_new_session", staticmethod(lambda verify, pool_size: ca))
    return ca


def run(module_main: ModuleMain, **args: t.Any) -> dict[str, t.Any]:
    args.setdefault("directory", DIRECTORY_URL)
    return module_main(acme_revoke, **args)


@pytest.fixture
def issued(fake: FakeAcme, tmp_path: Path) -> Issued:
    def make_client(session: t.Any, key: t.Any = None) -> AcmeClient:
        transport = Transport(timeout=5, session=session, clock=FakeClock())
        return AcmeClient(DIRECTORY_URL, transport, key=key or ec.generate_private_key(ec.SECP256R1()))

    return Issued(fake, make_client, tmp_path)


def test_check_then_revoke_then_unchanged(module_main: ModuleMain, fake: FakeAcme, issued: Issued) -> None:
    args = {"account_key_content": key_pem(issued.account_key), "certificate_path": str(issued.path),
            "reason": "keyCompromise"}
    check = run(module_main, **args, _ansible_check_mode=True)
    assert check["changed"] and check["ca_requests"] == 0 and fake.requests == [] and fake.revoked == {}
    done = run(module_main, **args)
    assert done["changed"] and done["revoked"] and done["reason_code"] == 1 and fake.revoked == {issued.serial: 1}
    again = run(module_main, **args)
    assert not again["changed"] and again["already_revoked"]
    assert "PRIVATE KEY" not in json.dumps([check, done, again])


def test_by_the_certificate_key_needs_no_account_key(module_main: ModuleMain, fake: FakeAcme,
                                                     issued: Issued) -> None:
    done = run(module_main, certificate_path=str(issued.path), revoke_with="certificate_key", reason=1)
    assert done["changed"] and done["revoked_with"] == "certificate_key" and fake.revoked == {issued.serial: 1}


def test_the_account_key_is_required_for_revoke_with_account_key(
        module_main: ModuleMain, issued: Issued) -> None:
    result = run(module_main, certificate_path=str(issued.path))
    assert result["failed"] and "revoke_with is account_key" in result["msg"]
    assert "account_key_path" in result["msg"]


def test_bad_reason(module_main: ModuleMain, fake: FakeAcme, issued: Issued) -> None:
    result = run(module_main, certificate_path=str(issued.path), revoke_with="certificate_key", reason="unused")
    assert result["failed"] and result["msg"].startswith("reason 'unused' is no RFC 5280 revocation reason")
    assert fake.requests == []
