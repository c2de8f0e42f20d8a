# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Accounts against the fake CA: look up, create, EAB, contact, deactivate; the account key."""

from __future__ import annotations

import os
import stat
import typing as t
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import account, jws
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.account_key import (
    ensure_account_key_file,
    load_account_key,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.client import AcmeClient
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import (
    AcmeError,
    AcmeProblem,
    ConfigError,
    FileError,
    PemError,
)
from tests.unit.plugins.module_utils._acme.fake_acme import FakeAcme

MakeClient = t.Callable[..., AcmeClient]


def test_lookup_missing_then_create_then_lookup(fake: FakeAcme, make_client: MakeClient) -> None:
    client = make_client(fake)
    assert account.lookup(client) is None
    created = account.create(client, ["mailto:a@example.com"], terms_agreed=True)
    assert created.created and created.status == "valid" and client.kid == created.uri
    other = make_client(fake, key=client.key)
    found = account.lookup(other)
    assert found is not None and found.uri == created.uri and found.contact == ["mailto:a@example.com"]
    assert not found.created and other.kid == created.uri


def test_create_needs_terms(fake: FakeAcme, make_client: MakeClient) -> None:
    with pytest.raises(ConfigError, match="terms_agreed: true"):
        account.create(make_client(fake), None, terms_agreed=False)
    assert fake.count("new-acct") == 0


def test_ensure_refuses_to_create_unless_allowed(fake: FakeAcme, make_client: MakeClient) -> None:
    with pytest.raises(ConfigError, match="no ACME account exists for this account key"):
        account.ensure(make_client(fake), contact=None, terms_agreed=False, allow_create=False)


@pytest.mark.parametrize("key", [
    pytest.param(lambda: ec.generate_private_key(ec.SECP384R1()), id="ec384"),
    pytest.param(lambda: rsa.generate_private_key(65537, 2048), id="rsa2048"),
])
def test_other_key_types_sign_accepted_requests(fake: FakeAcme, make_client: MakeClient,
                                                key: t.Callable[[], t.Any]) -> None:
    client = make_client(fake, key=key())
    assert account.ensure(client, contact=None, terms_agreed=True).created


def test_eab(make_client: MakeClient) -> None:
    mac = jws.b64u(b"k" * 32)
    fake = FakeAcme(eab_keys={"kid-1": mac})
    with pytest.raises(ConfigError, match="requires external account binding"):
        account.create(make_client(fake), None, terms_agreed=True)
    with pytest.raises(AcmeProblem, match="bad EAB MAC"):
        account.create(make_client(fake), None, terms_agreed=True, eab_kid="kid-1", eab_hmac_key=jws.b64u(b"x" * 32))
    assert account.create(make_client(fake), None, terms_agreed=True, eab_kid="kid-1", eab_hmac_key=mac).created


def test_update_contact_and_deactivate(fake: FakeAcme, make_client: MakeClient) -> None:
    client = make_client(fake)
    acct = account.create(client, None, terms_agreed=True)
    acct = account.update_contact(client, acct, ["mailto:b@example.com"])
    assert acct.contact == ["mailto:b@example.com"]
    acct = account.deactivate(client, acct)
    assert acct.status == "deactivated"
    found = account.lookup(make_client(fake, key=client.key))
    assert found is not None and found.status == "deactivated"
    with pytest.raises(AcmeError, match="deactivated"):
        account.ensure(make_client(fake, key=client.key), contact=None, terms_agreed=True)


@pytest.mark.parametrize(("email", "contact"), [
    (None, None), ("", []), ("a@example.com", ["mailto:a@example.com"]),
    ("a@example.com, b@example.com", ["mailto:a@example.com", "mailto:b@example.com"]),
])
def test_contact_for(email: str | None, contact: list[str] | None) -> None:
    assert account.contact_for(email) == contact


@pytest.mark.parametrize("bad", ["nobody", "a b@example.com"])
def test_contact_for_rejects(bad: str) -> None:
    with pytest.raises(ConfigError, match="invalid email"):
        account.contact_for(bad)


# ------------------------------------------------------------------ the key


SEC1_EC = ec.generate_private_key(ec.SECP256R1()).private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
)


def test_acme_sh_style_sec1_key_loads(tmp_path: Path) -> None:
    path = tmp_path / "account.key"
    path.write_bytes(SEC1_EC)
    assert b"BEGIN EC PRIVATE KEY" in SEC1_EC
    assert isinstance(load_account_key(str(path), None), ec.EllipticCurvePrivateKey)
    assert isinstance(load_account_key(None, SEC1_EC.decode()), ec.EllipticCurvePrivateKey)


@pytest.mark.parametrize(("setup", "error", "match"), [
    (lambda p: None, FileError, "does not exist: create it with tlsops.haproxy_acme.acme_account"),
    (lambda p: p.write_text("not a key"), PemError, "no PEM private key found"),
    (lambda p: p.write_bytes(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), PemError, "no PEM private key"),
    (lambda p: p.mkdir(), FileError, "is a directory"),
])
def test_bad_account_keys(tmp_path: Path, setup: t.Callable[[Path], object], error: type[Exception], match: str) -> None:
    path = tmp_path / "account.key"
    setup(path)
    with pytest.raises(error, match=match) as info:
        load_account_key(str(path), None)
    assert "MIIB" not in str(info.value)


def test_key_path_and_content_exclusive() -> None:
    with pytest.raises(ConfigError):
        load_account_key("/x", SEC1_EC.decode())
    with pytest.raises(ConfigError, match="account key is needed"):
        load_account_key(None, None)


def test_ensure_key_file_creates_0600_once(tmp_path: Path) -> None:
    path = str(tmp_path / "account.key")
    key, created = ensure_account_key_file(path, "ec384", check_mode=True)
    assert created and not os.path.exists(path)
    key, created = ensure_account_key_file(path, "ec384")
    assert created and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again, created = ensure_account_key_file(path, "ec384")
    assert not created and jws.thumbprint(again) == jws.thumbprint(key)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1"


def test_ensure_key_file_needs_its_directory(tmp_path: Path) -> None:
    with pytest.raises(FileError, match="does not exist"):
        ensure_account_key_file(str(tmp_path / "nope" / "account.key"), "ec256")
