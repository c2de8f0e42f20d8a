# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Revocation (RFC 8555 section 7.6) against the fake CA: by the account key and by the
certificate's own key, alreadyRevoked, reasons refused here and by the CA."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import account, revoke
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.client import AcmeClient
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.issuer import CertSpec, Issuer, Options
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import (
    AcmeError,
    AcmeProblem,
    ConfigError,
    HaproxyAcmeError,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import load_certificates
from tests.unit.plugins.module_utils._acme.fake_acme import DIRECTORY_URL, FakeAcme, unb64u

MakeClient = t.Callable[..., AcmeClient]


def key_pem(key: t.Any) -> str:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


class Issued:
    """One certificate issued by the fake CA to an account; the bundle (leaf, chain, key) on disk."""

    def __init__(self, fake: FakeAcme, make_client: MakeClient, tmp_path: Path, name: str = "web") -> None:
        self.fake = fake
        client = make_client(fake)
        self.account_key = client.account_key
        (tmp_path / "certs").mkdir(exist_ok=True)
        Issuer(client, lambda: account.ensure(client, contact=None, terms_agreed=True) and None,
               Options(cert_dir=str(tmp_path / "certs"), use_ari=False)).run([CertSpec(name, [f"{name}.example"], "ec256")])
        self.path = tmp_path / "certs" / f"{name}.pem"
        self.bundle = self.path.read_bytes()
        self.serial = load_certificates(self.bundle)[0].serial_number
        self.account_uri = client.kid
        fake.requests.clear()

    def params(self, **extra: t.Any) -> dict[str, t.Any]:
        return {"directory": DIRECTORY_URL, "account_key_content": key_pem(self.account_key),
                "certificate_path": str(self.path), **extra}


@pytest.fixture
def issued(fake: FakeAcme, make_client: MakeClient, tmp_path: Path) -> Issued:
    return Issued(fake, make_client, tmp_path)


def revoke_requests(fake: FakeAcme) -> list[tuple[str, str]]:
    return [r for r in fake.requests if r[1].endswith("/revoke")]


def test_by_the_account_key_then_already_revoked(issued: Issued) -> None:
    fake = issued.fake
    first = revoke.run(issued.params(reason="superseded"), session=fake).result
    assert first["changed"] and first["revoked"] and not first["already_revoked"]
    assert (first["reason"], first["reason_code"], first["revoked_with"]) == ("superseded", 4, "account_key")
    assert first["account_uri"] == issued.account_uri and first["domains"] == ["web.example"]
    assert fake.revoked == {issued.serial: 4}
    assert int(first["serial"], 16) == issued.serial

    again = revoke.run(issued.params(reason="superseded"), session=fake).result
    assert not again["changed"] and again["already_revoked"] and again["revoked"]
    assert fake.revoked == {issued.serial: 4} and len(revoke_requests(fake)) == 2


def test_by_the_certificate_key_from_the_bundle_itself(issued: Issued) -> None:
    """Signed with the certificate's key and its jwk: no account key needed at all."""
    fake = issued.fake
    result = revoke.run({"directory": DIRECTORY_URL, "certificate_content": issued.bundle.decode(),
                         "revoke_with": "certificate_key", "reason": "keyCompromise"}, session=fake).result
    assert result["changed"] and result["revoked_with"] == "certificate_key" and result["account_uri"] is None
    assert fake.revoked == {issued.serial: 1}
    assert fake.count("new-acct") == 0  # no account looked up
    protected = fake._last_protected
    assert "jwk" in protected and "kid" not in protected


def test_by_the_certificate_key_given_apart(issued: Issued, tmp_path: Path) -> None:
    leaf_only = tmp_path / "leaf.pem"
    leaf_only.write_bytes(issued.bundle.split(b"-----END CERTIFICATE-----")[0] + b"-----END CERTIFICATE-----\n")
    key_block = issued.bundle[issued.bundle.index(b"-----BEGIN PRIVATE KEY-----"):].decode()
    params = {"directory": DIRECTORY_URL, "certificate_path": str(leaf_only), "revoke_with": "certificate_key"}
    with pytest.raises(ConfigError, match="the certificate holds none, so set private_key_path or private_key_content"):
        revoke.run(params, session=issued.fake)
    result = revoke.run({**params, "private_key_content": key_block, "reason": 1}, session=issued.fake).result
    assert result["changed"] and issued.fake.revoked == {issued.serial: 1}
    assert not revoke.run({**params, "private_key_content": key_block}, session=issued.fake).result["changed"]


def test_a_key_that_is_not_the_certificates_is_refused_before_sending(issued: Issued) -> None:
    other = key_pem(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ConfigError, match="the private key does not belong to certificate"):
        revoke.run(issued.params(revoke_with="certificate_key", private_key_content=other), session=issued.fake)
    assert issued.fake.requests == []


def test_another_accounts_certificate_needs_its_own_key(issued: Issued, make_client: MakeClient) -> None:
    stranger = make_client(issued.fake)
    account.create(stranger, None, terms_agreed=True)
    with pytest.raises(AcmeProblem) as info:
        revoke.run(issued.params(account_key_content=key_pem(stranger.account_key)), session=issued.fake)
    serial = format(issued.serial, "X")
    assert info.value.msg.startswith(f"revoking certificate {serial.zfill(len(serial) + len(serial) % 2)}"
                                     " (web.example): ACME server error unauthorized: "), info.value.msg
    assert info.value.msg.endswith("revoke with the certificate's own key (revoke_with: certificate_key)")
    assert issued.fake.revoked == {}


def test_an_account_key_without_account(issued: Issued) -> None:
    with pytest.raises(AcmeError, match=r"the ACME account of the account key does not exist at .*revoke_with: certificate_key"):
        revoke.run(issued.params(account_key_content=key_pem(ec.generate_private_key(ec.SECP256R1()))),
                   session=issued.fake)
    assert revoke_requests(issued.fake) == []


@pytest.mark.parametrize("reason", [7, "7", 11, -1, "keycompromized", True, 1.5, "unused"])
def test_bad_reasons_are_refused_before_anything_is_sent(issued: Issued, reason: t.Any) -> None:
    with pytest.raises(ConfigError, match=r"is no RFC 5280 revocation reason: use one of unspecified \(0\), keyCompromise \(1\)"):
        revoke.run(issued.params(reason=reason), session=issued.fake)
    assert issued.fake.requests == []


@pytest.mark.parametrize(("given", "expected"), [
    (None, None), ("", None), (0, ("unspecified", 0)), ("1", ("keyCompromise", 1)),
    ("keyCompromise", ("keyCompromise", 1)), ("key_compromise", ("keyCompromise", 1)),
    ("KEYCOMPROMISE", ("keyCompromise", 1)), ("cessation-of-operation", ("cessationOfOperation", 5)),
    (10, ("aACompromise", 10)), ("removeFromCRL", ("removeFromCRL", 8)),
])
def test_reason_names_and_numbers(given: t.Any, expected: tuple[str, int] | None) -> None:
    assert revoke.parse_reason(given) == expected


def test_a_reason_the_ca_refuses(fake: FakeAcme, make_client: MakeClient, tmp_path: Path) -> None:
    fake.revocation_reasons = (0, 1, 3, 4, 5)
    issued = Issued(fake, make_client, tmp_path)
    with pytest.raises(AcmeProblem, match=r"ACME server error badRevocationReason: Invalid revocation reason: 6;"
                                          r" this CA does not take that reason: give another one, or none$"):
        revoke.run(issued.params(reason="certificateHold"), session=fake)
    assert fake.revoked == {}


def test_no_reason_sends_none(issued: Issued) -> None:
    result = revoke.run(issued.params(), session=issued.fake).result
    assert result["reason"] is None and result["reason_code"] is None
    assert issued.fake.revoked == {issued.serial: None}


def test_the_payload_is_the_leaf_in_der(issued: Issued) -> None:
    cert = load_certificates(issued.bundle)[0]
    payload = revoke.revocation_payload(cert, 1)
    assert unb64u(payload["certificate"]) == cert.public_bytes(Encoding.DER) and payload["reason"] == 1
    assert json.dumps(payload)  # plain JSON


def test_check_mode_sends_nothing(issued: Issued) -> None:
    for params in (issued.params(reason="keyCompromise"),
                   issued.params(revoke_with="certificate_key", reason="keyCompromise")):
        result = revoke.run(params, check_mode=True, session=issued.fake).result
        assert result["changed"] and result["revoked"] and result["ca_requests"] == 0
    assert issued.fake.requests == [] and issued.fake.revoked == {}


@pytest.mark.parametrize(("extra", "match"), [
    ({"certificate_path": None}, "the certificate to revoke is needed"),
    ({"certificate_path": "/nonexistent/x.pem"}, "certificate /nonexistent/x.pem does not exist"),
    ({"certificate_content": "no pem here", "certificate_path": None}, "certificate_content: no PEM certificate found"),
    ({"private_key_content": "x"}, "private_key_path and private_key_content go with revoke_with: certificate_key"),
    ({"revoke_with": "both"}, "revoke_with must be account_key or certificate_key"),
])
def test_clear_errors(issued: Issued, extra: dict[str, t.Any], match: str) -> None:
    with pytest.raises(HaproxyAcmeError, match=match):
        revoke.run(issued.params(**extra), session=issued.fake)
    assert issued.fake.requests == []
