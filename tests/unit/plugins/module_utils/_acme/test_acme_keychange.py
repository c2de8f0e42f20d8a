# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Account key rollover (RFC 8555 section 7.3.5) against the fake CA, which checks both JWS."""

from __future__ import annotations

import json
import typing as t

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import account, jws, keychange
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.client import AcmeClient
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import AcmeError, AcmeReplyLost
from tests.unit.plugins.module_utils._acme.fake_acme import BASE, FakeAcme, _verify_signature, unb64u

MakeClient = t.Callable[..., AcmeClient]
KEY_CHANGE = f"{BASE}/key-change"


def new_account(fake: FakeAcme, make_client: MakeClient, key: t.Any = None) -> AcmeClient:
    client = make_client(fake, key=key)
    account.create(client, None, terms_agreed=True)
    return client


def test_inner_jws_signed_by_the_new_key_outer_by_the_old(fake: FakeAcme, make_client: MakeClient) -> None:
    client = new_account(fake, make_client)
    old_key, uri = client.key, client.kid
    new_key = ec.generate_private_key(ec.SECP384R1())

    done = keychange.ensure_rolled_over(client, new_key)

    assert done.outcome == keychange.ROLLED_OVER and done.changed and done.account.uri == uri
    assert (done.old_thumbprint, done.new_thumbprint) == (jws.thumbprint(old_key), jws.thumbprint(new_key))
    (outer, inner, payload), = fake.key_changes
    # the outer JWS: the account's own request, old key, kid, nonce (the fake verified its signature)
    assert outer["kid"] == uri and "jwk" not in outer and outer["nonce"] and outer["url"] == KEY_CHANGE
    assert outer["alg"] == "ES256"
    # the inner JWS: the new key, its jwk, the same url, no nonce
    assert inner == {"alg": "ES384", "url": KEY_CHANGE, "jwk": jws.jwk(new_key)}
    assert payload == {"account": uri, "oldKey": jws.jwk(old_key)}
    # afterwards the client signs with the new key, and the CA knows only that one
    assert client.key is new_key and client.kid == uri
    assert keychange.lookup_with(client, old_key) is None
    found = keychange.lookup_with(client, new_key)
    assert found is not None and found.uri == uri


def test_the_inner_signature_is_the_new_keys_own(fake: FakeAcme, make_client: MakeClient) -> None:
    client = new_account(fake, make_client)
    new_key = rsa.generate_private_key(65537, 2048)
    inner = keychange.key_change_request(KEY_CHANGE, "https://ca.test/acct/1", client.account_key, new_key)
    protected = json.loads(unb64u(inner["protected"]))
    signed = f"{inner['protected']}.{inner['payload']}".encode()
    assert protected["alg"] == "RS256" and "nonce" not in protected and "kid" not in protected
    assert _verify_signature(new_key.public_key(), "RS256", signed, unb64u(inner["signature"]))
    assert not _verify_signature(t.cast(ec.EllipticCurvePrivateKey, client.account_key).public_key(), "ES256",
                                 signed, unb64u(inner["signature"]))


def test_rerun_after_success_sends_no_key_change(fake: FakeAcme, make_client: MakeClient) -> None:
    client = new_account(fake, make_client)
    old_key, uri = client.key, client.kid
    new_key = ec.generate_private_key(ec.SECP256R1())
    keychange.ensure_rolled_over(client, new_key)

    again_client = make_client(fake, key=old_key)  # the same task, run again with the same files
    again = keychange.ensure_rolled_over(again_client, new_key)
    assert again.outcome == keychange.ALREADY and not again.changed and again.account.uri == uri
    assert again_client.key is new_key and again_client.kid == uri
    assert len(fake.key_changes) == 1

    moved = make_client(fake, key=new_key)  # and once the new key has replaced the old file
    same = keychange.ensure_rolled_over(moved, new_key)
    assert same.outcome == keychange.SAME_KEY and not same.changed and same.account.uri == uri
    assert len(fake.key_changes) == 1


def test_check_mode_looks_up_and_sends_nothing(fake: FakeAcme, make_client: MakeClient) -> None:
    client = new_account(fake, make_client)
    old_key = client.key
    predicted = keychange.ensure_rolled_over(client, ec.generate_private_key(ec.SECP256R1()), check_mode=True)
    assert predicted.changed and fake.key_changes == [] and fake.count("key-change") == 0
    assert client.key is old_key and keychange.lookup_with(client, old_key) is not None


def test_a_new_key_of_another_account_is_refused_before_sending(fake: FakeAcme, make_client: MakeClient) -> None:
    client = new_account(fake, make_client)
    other = new_account(fake, make_client)
    with pytest.raises(AcmeError) as info:
        keychange.ensure_rolled_over(client, other.account_key)
    assert info.value.msg.startswith(f"the new account key (thumbprint {other.thumbprint}) already belongs to"
                                     f" another account, {other.kid}, while the account key belongs to {client.kid}")
    assert "409 Conflict" in info.value.msg and fake.count("key-change") == 0


def test_a_409_conflict_says_the_key_belongs_to_another_account(fake: FakeAcme, make_client: MakeClient) -> None:
    """The CA's own check, as when another account took the key between look-up and request."""
    client = new_account(fake, make_client)
    other = new_account(fake, make_client)
    found = account.lookup(client)
    assert found is not None
    with pytest.raises(AcmeError, match=r"the new account key already belongs to another account \(HTTP 409"):
        keychange.key_change(client, found, other.account_key)
    assert fake.count("key-change") == 1 and client.kid == found.uri


def test_neither_key_has_an_account(fake: FakeAcme, make_client: MakeClient) -> None:
    client = make_client(fake)
    with pytest.raises(AcmeError, match=r"no ACME account exists at .* for the account key .* nor for the new"
                                        r" account key .*: nothing to roll over"):
        keychange.ensure_rolled_over(client, ec.generate_private_key(ec.SECP256R1()))
    assert fake.count("key-change") == 0


def test_same_key_without_an_account(fake: FakeAcme, make_client: MakeClient) -> None:
    client = make_client(fake)
    with pytest.raises(AcmeError, match="the new account key is the same key: nothing to roll over"):
        keychange.ensure_rolled_over(client, client.account_key)


def test_deactivated_account_is_not_rolled_over(fake: FakeAcme, make_client: MakeClient) -> None:
    client = new_account(fake, make_client)
    found = account.lookup(client)
    assert found is not None
    account.deactivate(client, found)
    with pytest.raises(AcmeError, match="deactivated: it cannot be rolled over"):
        keychange.ensure_rolled_over(make_client(fake, key=client.key), ec.generate_private_key(ec.SECP256R1()))
    assert fake.count("key-change") == 0


def test_a_lost_reply_is_read_back_with_the_new_key(fake: FakeAcme, make_client: MakeClient) -> None:
    client = new_account(fake, make_client)
    uri, new_key = client.kid, ec.generate_private_key(ec.SECP256R1())
    fake.lose_reply = {"/key-change": 1}  # processed, then the connection reset
    done = keychange.ensure_rolled_over(client, new_key)
    assert done.changed and client.key is new_key and client.kid == uri
    assert fake.count("key-change") == 1  # not sent twice
    found = keychange.lookup_with(client, new_key)
    assert found is not None and found.uri == uri


def test_a_reply_lost_before_the_ca_acted_is_not_taken_for_success(fake: FakeAcme, make_client: MakeClient) -> None:
    client = new_account(fake, make_client)
    fake.reset_before = {"/key-change": 1}  # nothing processed: the connection reset
    with pytest.raises(AcmeReplyLost):
        keychange.ensure_rolled_over(client, ec.generate_private_key(ec.SECP256R1()))
    assert fake.key_changes == []
