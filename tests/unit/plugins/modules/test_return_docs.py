# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Each module's RETURN says what it returns: every key, recursively, and nothing more.

Every module runs through its real ``main()`` against the fakes (the fake CA, the fake
stats socket) in the cases that shape its result: check mode, a change, a rerun, a
batch, one certificate failing, the whole run failing. Then, recursively:

- every key returned is documented (Ansible's own keys such as ``changed``, ``failed``,
  ``msg`` and ``invocation`` aside, at the top level only);
- every key documented as ``returned: always`` is there, in every case, failures too;
- every documented key is returned in at least one case;
- every documented key says when it is returned.

The results include what ``AnsibleModule`` adds itself: the file attributes
(``uid``, ``mode``, ``state``...) of a top-level ``path`` that exists.
"""

from __future__ import annotations

import json
import types
import typing as t
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.client import AcmeClient
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.transport import Transport
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import deploy
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import private_key_to_pem
from ansible_collections.tlsops.haproxy_acme.plugins.modules import (
    acme_account,
    acme_revoke,
    acme_stateless_order,
    haproxy_acme_thumbprint,
    haproxy_config,
    haproxy_runtime_cert,
    haproxy_runtime_cert_info,
)
from tests.unit.conftest import ModuleMain
from tests.unit.plugins.module_utils._acme.conftest import FakeClock
from tests.unit.plugins.module_utils._acme.fake_acme import DIRECTORY_URL, FakeAcme
from tests.unit.plugins.module_utils._acme.test_acme_revoke_client import Issued
from tests.unit.plugins.module_utils._haproxy.fake_haproxy import FakeHaproxy
from tests.unit.plugins.module_utils._haproxy.test_haproxy_maps import NEW, OLD, FakeMapHaproxy
from tests.unit.plugins.module_utils._haproxy.testcerts import bundle, mismatched_bundle, serial_of

# Keys of Ansible's own, which every module may return and none documents.
STANDARD = frozenset({"changed", "failed", "msg", "invocation", "diff", "warnings", "deprecations", "exception"})
# Documented keys no case here can return: AnsibleModule adds secontext only on a host with SELinux.
UNREACHABLE = frozenset({"secontext"})

Result = t.Dict[str, t.Any]


class Audit:
    """The results of one module's cases, held against its RETURN."""

    def __init__(self, module: types.ModuleType) -> None:
        self.doc: dict[str, t.Any] = yaml.safe_load(module.RETURN)
        self.seen: set[str] = set()
        self.errors: list[str] = []

    def check(self, case: str, result: Result) -> None:
        top = {k: v for k, v in result.items() if k not in STANDARD}
        self._walk(case, top, self.doc, "")

    def _walk(self, case: str, value: Result, doc: dict[str, t.Any], where: str) -> None:
        for key, item in value.items():
            spec = doc.get(key)
            if spec is None:
                self.errors.append(f"{case}: {where}{key} is returned but not documented")
                continue
            self.seen.add(where + key)
            contains = spec.get("contains")
            if not contains:
                continue
            if isinstance(item, dict):
                self._walk(case, item, contains, f"{where}{key}.")
            elif isinstance(item, list):
                for element in item:
                    if isinstance(element, dict):
                        self._walk(case, element, contains, f"{where}{key}[].")
        for key, spec in doc.items():
            if spec.get("returned") == "always" and key not in value:
                self.errors.append(f"{case}: {where}{key} is documented as returned always but is missing")

    def finish(self) -> None:
        for path, spec in _documented(self.doc, ""):
            if "returned" not in spec:
                self.errors.append(f"{path} does not say when it is returned")
            if path not in self.seen and path not in UNREACHABLE:
                self.errors.append(f"{path} is documented but no case returned it")
        assert not self.errors, "\n".join(self.errors)


def _documented(doc: dict[str, t.Any], where: str) -> t.Iterator[tuple[str, dict[str, t.Any]]]:
    for key, spec in doc.items():
        yield where + key, spec
        contains = spec.get("contains")
        if contains:
            inner = f"{where}{key}[]." if spec.get("type") == "list" else f"{where}{key}."
            yield from _documented(contains, inner)


Args = t.Union[t.Dict[str, t.Any], t.Callable[[], t.Dict[str, t.Any]]]


def run_cases(module_main: ModuleMain, module: types.ModuleType,
              cases: t.Sequence[tuple[str, Args]]) -> list[Result]:
    """Each case in turn (a callable sets the fakes up first), then the audit of them all."""
    audit = Audit(module)
    results = []
    for case, args in cases:
        result = module_main(module, **(args() if callable(args) else args))
        audit.check(case, result)
        results.append(result)
    audit.finish()
    return results


@pytest.fixture
def ca(monkeypatch: pytest.MonkeyPatch) -> FakeAcme:
    fake = FakeAcme()
    monkeypatch.setattr(Transport, "_new_session", staticmethod(lambda verify, pool_size: fake))
    return fake


def _account_key(path: Path) -> str:
    path.write_bytes(private_key_to_pem(ec.generate_private_key(ec.SECP256R1())))
    return str(path)


def test_acme_account(module_main: ModuleMain, ca: FakeAcme, tmp_path: Path) -> None:
    key = str(tmp_path / "account.key")
    base = {"directory": DIRECTORY_URL, "account_key_path": key, "terms_agreed": True}

    def bad_binding() -> dict[str, t.Any]:
        ca.eab_keys = {"kid-1": "c2VjcmV0"}
        return {**base, "account_key_path": _account_key(tmp_path / "new.key"), "eab_kid": "kid-2",
                "eab_hmac_key": "c2VjcmV0"}

    results = run_cases(module_main, acme_account, [
        ("check mode, no key yet", {**base, "_ansible_check_mode": True}),
        ("key and account created", {**base, "email": "ops@example.com"}),
        ("rerun", base),
        ("rollover, new key generated", {**base, "new_account_key_path": str(tmp_path / "next.key")}),
        ("absent without a key file", {**base, "account_key_path": str(tmp_path / "none.key"), "state": "absent"}),
        ("deactivated", {**base, "account_key_path": str(tmp_path / "next.key"), "state": "absent"}),
        ("refused by the CA: an unknown binding", bad_binding),
        ("unknown directory alias", {**base, "directory": "lets_encrypt"}),
    ])
    assert [r.get("failed", False) for r in results] == [False] * 6 + [True] * 2


def test_acme_revoke(module_main: ModuleMain, ca: FakeAcme, tmp_path: Path) -> None:
    def make_client(session: t.Any, key: t.Any = None) -> AcmeClient:
        transport = Transport(timeout=5, session=session, clock=FakeClock())
        return AcmeClient(DIRECTORY_URL, transport, key=key or ec.generate_private_key(ec.SECP256R1()))

    issued = Issued(ca, make_client, tmp_path)
    other = Issued(ca, make_client, tmp_path, name="other")
    third = Issued(ca, make_client, tmp_path, name="third")
    results = run_cases(module_main, acme_revoke, [
        ("check mode", {**issued.params(reason="keyCompromise"), "_ansible_check_mode": True}),
        ("revoked by the account", issued.params(reason="keyCompromise")),
        ("revoked already", issued.params()),
        ("revoked by the certificate key", {**other.params(revoke_with="certificate_key"), "account_key_content": None}),
        ("signed by an account that does not hold it",
         {**third.params(), "account_key_content": issued.params()["account_key_content"]}),
        ("a reason that is none", issued.params(reason=7)),
        ("unknown directory alias", issued.params(directory="lets_encrypt")),
    ])
    assert [r.get("failed", False) for r in results] == [False] * 4 + [True] * 3


def test_acme_stateless_order(module_main: ModuleMain, ca: FakeAcme, tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    ca.fail_domains = ("broken.example",)
    base = {"directory": DIRECTORY_URL, "account_key_path": _account_key(tmp_path / "account.key"),
            "terms_agreed": True, "cert_dir": str(tmp_path / "certs"), "use_ari": False}
    results = run_cases(module_main, acme_stateless_order, [
        ("check mode, no file yet", {**base, "domains": ["a.example"], "_ansible_check_mode": True}),
        ("issued", {**base, "domains": ["a.example"], "profile": None}),
        ("rerun", {**base, "domains": ["a.example"]}),
        ("batch with one failure", {**base, "certificates": [
            {"name": "a.example", "domains": ["a.example"]}, {"domains": ["broken.example"]}]}),
        ("one certificate failed", {**base, "domains": ["broken.example"]}),
        ("unknown directory alias", {**base, "domains": ["a.example"], "directory": "lets_encrypt"}),
    ])
    assert [r.get("failed", False) for r in results] == [False, False, False, True, True, True]


def test_haproxy_runtime_cert(module_main: ModuleMain, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    certdir = tmp_path / "certs"
    certdir.mkdir()
    pem = bundle(["a.test"])
    # The TLS handshake of verify_address, answered with the serial just pushed.
    monkeypatch.setattr(deploy, "check_served", lambda address, domains, serial, timeout: serial)
    with FakeHaproxy(tmp_path, crt_dir=str(certdir)) as fake:
        base = {"socket": fake.socket}
        one = {**base, "path": str(certdir / "a.pem"), "pem_content": pem.decode()}
        results = run_cases(module_main, haproxy_runtime_cert, [
            ("check mode", {**one, "_ansible_check_mode": True}),
            ("created and verified", {**one, "verify_address": "127.0.0.1:443"}),
            ("rerun", one),
            ("batch with one bad bundle", {**base, "certificates": [
                {"path": str(certdir / "b.pem"), "pem_content": bundle(["b.test"]).decode()},
                {"path": str(certdir / "c.pem"), "pem_content": mismatched_bundle(["c.test"]).decode()}]}),
            ("removed", {**base, "path": str(certdir / "a.pem"), "state": "absent"}),
            ("no such socket", {**one, "socket": str(tmp_path / "none.sock")}),
            ("options wrong as a whole", {**one, "bufsize": 10}),
            ("batch as one JSON text", {**base, "as_json": True, "certificates": [
                {"path": str(certdir / "d.pem"), "pem_content": bundle(["d.test"]).decode()}]}),
        ])
    assert results[1]["serial"] == serial_of(pem) and results[1]["verified"] is True
    assert [r.get("failed", False) for r in results] == [False] * 3 + [True, False, True, True, False]
    listed = json.loads(results[-1]["certificates_json"])
    assert "certificates" not in results[-1] and [c["path"] for c in listed] == [str(certdir / "d.pem")]
    assert listed[0]["action"] == "created" and listed[0]["changed"] is True


def test_haproxy_runtime_cert_info(module_main: ModuleMain, tmp_path: Path) -> None:
    with FakeHaproxy(tmp_path) as fake:
        fake.add("/etc/haproxy/certs/a.pem", bundle(["a.test"], days=20))
        results = run_cases(module_main, haproxy_runtime_cert_info, [
            ("all", {"socket": fake.socket}),
            ("a name HAProxy does not hold", {"socket": fake.socket, "paths": ["/etc/haproxy/certs/none.pem"]}),
            ("the files' facts, some fields", {"socket": fake.socket, "bundle_facts": True,
                                               "fields": ["path", "serial", "bundle_facts"]}),
            ("no such socket", {"socket": str(tmp_path / "none.sock")}),
            ("as one JSON text", {"socket": fake.socket, "as_json": True}),
        ])
    assert [r.get("failed", False) for r in results] == [False, False, False, True, False]
    assert "certificates" not in results[-1] and json.loads(results[-1]["certificates_json"]) == results[0]["certificates"]
    assert json.loads(results[-1]["sockets"][0]["certificates_json"]) == results[0]["certificates"]


def test_haproxy_acme_thumbprint(module_main: ModuleMain, tmp_path: Path) -> None:
    mapfile = tmp_path / "acme-thumbprint.map"
    mapfile.write_text(f"thumbprint {OLD}\n")
    with FakeMapHaproxy(tmp_path, {str(mapfile): {"thumbprint": OLD}}) as fake:
        base = {"thumbprint": NEW, "path": str(mapfile), "socket": fake.socket}

        def refused() -> dict[str, t.Any]:
            fake.refuse = "Permission denied\n"
            return {**base, "thumbprint": OLD}

        cases: list[tuple[str, Args]] = [
            ("check mode", {**base, "_ansible_check_mode": True}),
            ("updated", base),
            ("rerun", base),
            ("HAProxy refuses", refused),
            ("a socket nobody answers on, not required", {**base, "socket": [fake.socket, str(tmp_path / "x.sock")],
                                                          "require_runtime": False}),
            ("no such map file directory", {**base, "path": str(tmp_path / "none" / "acme.map")}),
            ("not a thumbprint", {**base, "thumbprint": "x"}),
        ]
        results = run_cases(module_main, haproxy_acme_thumbprint, cases)
    assert [r.get("failed", False) for r in results] == [False] * 3 + [True, False, True, True]


def test_haproxy_config(module_main: ModuleMain, tmp_path: Path) -> None:
    check = tmp_path / "check"
    check.write_text('#!/bin/sh\ngrep -q broken "$1" && { echo broken; exit 1; }\nexit 0\n')
    check.chmod(0o755)
    etc = tmp_path / "etc"
    base = {"directories": [{"path": str(etc / "maps")}],
            "files": [{"path": str(etc / "maps" / "hosts.map"), "content": "a.example web\n"}],
            "config": {"path": str(etc / "haproxy.cfg"), "content": "global\n", "backup": True},
            "validate": f"{check} %s"}
    cases: list[tuple[str, Args]] = [
        ("check mode", {**base, "_ansible_check_mode": True}),
        ("created", base),
        ("rerun", base),
        ("replaced, with a backup", {**base, "config": {**base["config"], "content": "global\n  maxconn 9\n"}}),
        ("fails its check", {**base, "config": {**base["config"], "content": "broken\n"}}),
        ("no config", {"directories": base["directories"]}),
        ("bad mode", {**base, "directories": [{"path": str(etc), "mode": "x"}]}),
    ]
    results = run_cases(module_main, haproxy_config, cases)
    assert [r.get("failed", False) for r in results] == [False] * 4 + [True, False, True]


@pytest.mark.parametrize("module", [acme_stateless_order, acme_revoke])
def test_account_key_type_only_where_a_key_is_generated(module_main: ModuleMain, tmp_path: Path,
                                                        module: types.ModuleType) -> None:
    """Only acme_account generates account keys; the other ACME modules refuse the option."""
    result = module_main(module, directory=DIRECTORY_URL, account_key_path=str(tmp_path / "account.key"),
                         account_key_type="ec384", cert_dir=str(tmp_path), domains=["a.example"],
                         certificate_path=str(tmp_path / "a.pem"))
    assert result["failed"] and "Unsupported parameters" in result["msg"] and "account_key_type" in result["msg"]
