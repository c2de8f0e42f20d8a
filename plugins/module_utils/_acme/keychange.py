# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Account key rollover (RFC 8555 section 7.3.5): the account keeps its URL, orders and
certificates, and from then on signs with another key.

The request to ``keyChange`` is a JWS inside a JWS:

* the inner one is signed by the **new** key, carries its ``jwk``, the ``url`` of
  ``keyChange`` and no nonce; its payload is ``{"account": <account URL>, "oldKey":
  <JWK of the old key>}``;
* the outer one is an ordinary request of the account: signed by the **old** key, with
  its ``kid``, a nonce, the same ``url``; its payload is the inner JWS.

Whether a rollover is due is read from the CA, never from local state: the account is
looked up with each key (``onlyReturnExisting``, section 7.3.1). Once rolled over, the
old key finds no account and the new key finds it, which is what a second run sees.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import account as acct
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import jws
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.client import AcmeClient
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import (
    AcmeError,
    AcmeProblem,
    AcmeReplyLost,
)

# What the outcome of ensure_rolled_over was.
ROLLED_OVER = "rolled_over"  # the keyChange was sent (or would be, in check mode)
ALREADY = "already_rolled_over"  # the new key is the account's key already
SAME_KEY = "same_key"  # the new key is the account key given


@dataclass
class Rollover:
    """The account after the rollover, and what was done."""

    account: acct.Account
    outcome: str
    old_thumbprint: str
    new_thumbprint: str

    @property
    def changed(self) -> bool:
        return self.outcome == ROLLED_OVER


def lookup_with(client: AcmeClient, key: jws.SigningKey) -> acct.Account | None:
    """The account of ``key`` (onlyReturnExisting), leaving ``client`` signing as before."""
    saved = client.key, client.kid
    client.key, client.kid = key, None
    try:
        return acct.lookup(client)
    finally:
        client.key, client.kid = saved


def key_change_request(url: str, account_uri: str, old_key: jws.SigningKey,
                       new_key: jws.SigningKey) -> dict[str, str]:
    """The inner JWS of section 7.3.5: signed by the new key, its ``jwk``, no nonce."""
    payload = {"account": account_uri, "oldKey": jws.jwk(old_key)}
    return jws.sign(new_key, url, payload, None)


def key_change(client: AcmeClient, account: acct.Account, new_key: jws.SigningKey) -> None:
    """POST the nested JWS to ``keyChange``; afterwards ``client`` signs with ``new_key``.

    A reply lost on the way is not simply sent again (the old key may no longer be the
    account's): the new key is asked whether it is now the account's.
    """
    url = client.directory["keyChange"]
    inner = key_change_request(url, account.uri, client.account_key, new_key)
    client.kid = account.uri
    try:
        client.post(url, inner, replay_safe=False, account=account.uri)
    except AcmeReplyLost:
        found = lookup_with(client, new_key)
        if found is None or found.uri != account.uri:
            raise
    except AcmeProblem as exc:
        raise _rollover_error(exc, account) from None
    client.key, client.kid = new_key, account.uri


def _rollover_error(exc: AcmeProblem, account: acct.Account) -> AcmeError:
    if exc.status == 409:
        # Section 7.3.5: the new key is some account's already (pebble sends no body, only Location).
        return AcmeError(
            f"the ACME server refuses the key change of account {account.uri}: the new account key already"
            " belongs to another account (HTTP 409 Conflict); use a key no account has",
            account=account.uri, status=409)
    exc.msg = f"key change of account {account.uri}: {exc.msg}"
    exc.args = (exc.msg,)
    return exc


def ensure_rolled_over(client: AcmeClient, new_key: jws.SigningKey, check_mode: bool = False) -> Rollover:
    """Make ``new_key`` the key of the account of ``client.key``; unchanged once it is.

    ``client.key`` is the account key given (the old one). Afterwards ``client`` signs with
    whichever key is the account's. AcmeError with a message that says what to do when
    neither key has an account, when the new key has another account, or when the account
    is deactivated.
    """
    old_key = client.account_key
    old_tp, new_tp = jws.thumbprint(old_key), jws.thumbprint(new_key)
    if old_tp == new_tp:
        account = acct.lookup(client)
        if account is None:
            raise AcmeError(
                f"no ACME account exists for the account key (thumbprint {old_tp}) at {client.directory_url},"
                " and the new account key is the same key: nothing to roll over")
        _check_active(account)
        return Rollover(account, SAME_KEY, old_tp, new_tp)
    old_account = acct.lookup(client)
    new_account = lookup_with(client, new_key)
    if new_account is not None:
        _check_active(new_account)
        if old_account is not None and old_account.uri != new_account.uri:
            raise AcmeError(
                f"the new account key (thumbprint {new_tp}) already belongs to another account,"
                f" {new_account.uri}, while the account key belongs to {old_account.uri}: the ACME server"
                " would refuse the key change (RFC 8555 section 7.3.5, 409 Conflict); generate a new key",
                account=old_account.uri, conflicting_account=new_account.uri)
        # The old key finds no account (or the same one): the rollover happened already.
        client.key, client.kid = new_key, new_account.uri
        return Rollover(new_account, ALREADY, old_tp, new_tp)
    if old_account is None:
        raise AcmeError(
            f"no ACME account exists at {client.directory_url} for the account key (thumbprint {old_tp}) nor"
            f" for the new account key (thumbprint {new_tp}): nothing to roll over. Give the key the account"
            " was created with as account_key_path or account_key_content")
    _check_active(old_account)
    if not check_mode:
        key_change(client, old_account, new_key)
    return Rollover(old_account, ROLLED_OVER, old_tp, new_tp)


def _check_active(account: acct.Account) -> None:
    if account.status == "deactivated":
        raise AcmeError("the ACME account of this key is deactivated: it cannot be rolled over to another key")


def as_result(rollover: Rollover) -> dict[str, t.Any]:
    return {
        "rolled_over": rollover.changed,
        "old_thumbprint": rollover.old_thumbprint,
        "new_thumbprint": rollover.new_thumbprint,
    }
