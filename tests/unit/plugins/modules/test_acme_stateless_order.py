# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""acme_stateless_order through its real main(), the HTTP session replaced by the fake CA."""

from __future__ import annotations

import json
import os
import typing as t
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.transport import Transport
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._index import INDEX_NAME
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._lock import LOCK_NAME
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import (
    check_bundle,
    parse_bundle,
    private_key_to_pem,
)
from ansible_collections.tlsops.haproxy_acme.plugins.modules import acme_stateless_order
from tests.unit.conftest import ModuleMain
from tests.unit.plugins.module_utils._acme.fake_acme import DIRECTORY_URL, FakeAcme


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeAcme:
    ca = FakeAcme()
    monkeypatch.setattr(Transport, "_new_session", staticmethod(lambda verify, pool_size: ca))
    return ca


@pytest.fixture
def base(tmp_path: Path) -> dict[str, t.Any]:
    key_path = tmp_path / "account.key"
    key_path.write_bytes(private_key_to_pem(ec.generate_private_key(ec.SECP256R1())))
    (tmp_path / "certs").mkdir()
    return {"directory": DIRECTORY_URL, "account_key_path": str(key_path), "terms_agreed": True,
            "cert_dir": str(tmp_path / "certs"), "use_ari": False}


def run(module_main: ModuleMain, **args: t.Any) -> dict[str, t.Any]:
    return module_main(acme_stateless_order, **args)


def test_single_four_runs(fake: FakeAcme, module_main: ModuleMain, base: dict[str, t.Any]) -> None:
    args = {**base, "domains": ["Example.com", "www.example.com."], "_ansible_diff": True}
    path = Path(base["cert_dir"]) / "example.com.pem"

    check = run(module_main, _ansible_check_mode=True, **args)
    assert check["changed"] and check["action"] == "issued" and check["ca_requests"] == 0
    assert check["diff"] == {"before": {"example.com": None},
                             "after": {"example.com": {"domains": ["example.com", "www.example.com"], "serial": "(new)"}}}
    assert not path.exists() and fake.requests == []

    real = run(module_main, **args)
    assert real["changed"] and real["action"] == "issued" and real["path"] == str(path)
    assert real["certificates"][0]["serial"] == real["serial"] and real["days_left"] > 80
    check_bundle(parse_bundle(path.read_bytes()), ["example.com", "www.example.com"])
    assert real["diff"]["after"]["example.com"]["serial"] == real["serial"]
    assert "PRIVATE KEY" not in json.dumps(real)

    fake.requests.clear()
    for extra in ({"_ansible_check_mode": True}, {}):
        again = run(module_main, **args, **extra)
        assert not again["changed"] and again["action"] == "unchanged" and again["serial"] == real["serial"]
        assert again["ca_requests"] == 0
    assert fake.requests == [] and len(fake.orders) == 1

    forced = run(module_main, **args, force=True)
    assert forced["changed"] and forced["action"] == "renewed" and forced["serial"] != real["serial"]


def test_batch_with_one_failure(fake: FakeAcme, module_main: ModuleMain, base: dict[str, t.Any]) -> None:
    fake.fail_domains = ("broken.example",)
    result = run(module_main, **base, concurrency=8, certificates=[
        {"name": "one", "domains": ["one.example"]},
        {"domains": ["broken.example"]},
        {"name": "three", "domains": ["three.example"], "key_type": "rsa2048"},
        {"name": "wild", "domains": ["*.example"]},
    ])
    assert result["failed"] and result["changed"]
    assert [c["action"] for c in result["certificates"]] == ["issued", "failed", "issued", "failed"]
    assert result["msg"].startswith("2 of 4 certificates failed: certificate 'broken.example' (broken.example): "
                                    "validation of broken.example failed: unauthorized: ")
    assert "certificate 'wild' (*.example): " in result["msg"] and "wildcards" in result["msg"]
    assert "name" not in result  # batch: no top-level copy
    assert parse_bundle((Path(base["cert_dir"]) / "three.pem").read_bytes()).info().key_type == "rsa2048"
    assert sorted(n for n in os.listdir(base["cert_dir"]) if n not in (LOCK_NAME, INDEX_NAME)) == ["one.pem", "three.pem"]


def test_no_account_and_no_terms(fake: FakeAcme, module_main: ModuleMain, base: dict[str, t.Any]) -> None:
    result = run(module_main, **{**base, "terms_agreed": False}, domains=["a.example"])
    assert result["failed"] and result["action"] == "failed"
    assert result["msg"].startswith("certificate 'a.example' (a.example): no ACME account exists")
    assert fake.count("new-order") == 0


def test_unknown_directory_alias(fake: FakeAcme, module_main: ModuleMain, base: dict[str, t.Any]) -> None:
    result = run(module_main, **{**base, "directory": "lets_encrypt"}, domains=["a.example"])
    assert result["failed"] and "unknown ACME directory 'lets_encrypt'" in result["msg"]


@pytest.mark.parametrize(("args", "message"), [
    ({"concurrency": 0}, "concurrency must be a whole number from 1 to 16, not 0"),
    ({"mode": "rw-r-----"}, "invalid mode"),
    ({"certificates": [{"name": "a", "domains": ["a.example"]}, {"name": "a", "domains": ["b.example"]}]},
     "certificate names must be unique; repeated: a"),
])
def test_bad_options(fake: FakeAcme, module_main: ModuleMain, base: dict[str, t.Any],
                     args: dict[str, t.Any], message: str) -> None:
    args.setdefault("domains", None)
    if args["domains"] is None and "certificates" not in args:
        args["domains"] = ["a.example"]
    args = {k: v for k, v in args.items() if v is not None}
    result = run(module_main, **base, **args)
    assert result["failed"] and message in result["msg"]
    assert fake.requests == []


def test_mode_as_octal_int_and_string(fake: FakeAcme, module_main: ModuleMain, base: dict[str, t.Any]) -> None:
    run(module_main, **base, domains=["a.example"], mode=0o600)
    assert os.stat(Path(base["cert_dir"]) / "a.example.pem").st_mode & 0o777 == 0o600
    result = run(module_main, **base, domains=["a.example"], mode="0644")
    assert result["changed"] and result["action"] == "unchanged"
    assert os.stat(Path(base["cert_dir"]) / "a.example.pem").st_mode & 0o777 == 0o644
