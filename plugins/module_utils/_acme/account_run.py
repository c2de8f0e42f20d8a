# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What ``acme_account`` does, without Ansible: ensure an account is present or deactivated."""

from __future__ import annotations

import os
import typing as t

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _defaults
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import account as acct
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import jws, keychange
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.account_key import (
    ensure_account_key_file,
    load_account_key,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.client import AcmeClient
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.common_args import client_from_params
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import AcmeError, ConfigError
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._module import RunResult


def _result(account: acct.Account | None, thumbprint: str | None, changed: bool, key_created: bool) -> dict[str, t.Any]:
    return {
        "changed": changed,
        "account_uri": account.uri or None if account else None,
        "status": account.status if account else None,
        "contact": list(account.contact) if account else [],
        "thumbprint": thumbprint,
        "key_created": key_created,
        # Set by a key rollover (new_account_key_path / new_account_key_content) only.
        "rolled_over": False,
        "old_thumbprint": None,
        "new_thumbprint": None,
        "new_key_created": False,
    }


def _present(client: AcmeClient, params: t.Mapping[str, t.Any], check_mode: bool, key_created: bool) -> dict[str, t.Any]:
    contact = acct.contact_for(params.get("email"))
    account = None if key_created else acct.lookup(client)
    if account is not None and account.status == "deactivated":
        raise AcmeError("the ACME account of this key is deactivated: it cannot be used again; use a new key")
    if account is None:
        if not check_mode:
            account = acct.create(client, contact, bool(params.get("terms_agreed")),
                                  params.get("eab_kid"), params.get("eab_hmac_key"))
        return _result(account, client.thumbprint, True, key_created)
    if contact is None or sorted(contact) == sorted(account.contact):
        return _result(account, client.thumbprint, key_created, key_created)
    if check_mode:
        account.contact = contact
    else:
        account = acct.update_contact(client, account, contact)
    return _result(account, client.thumbprint, True, key_created)


def _rollover(client: AcmeClient, params: t.Mapping[str, t.Any], check_mode: bool) -> dict[str, t.Any]:
    """``state: present`` with a new key: roll the account over to it (RFC 8555 section 7.3.5),
    then the contact as without. The account key must exist: it is never generated here."""
    path, content = params.get("new_account_key_path"), params.get("new_account_key_content")
    if path and not content:
        new_key, created = ensure_account_key_file(
            path, params.get("account_key_type") or _defaults.KEY_TYPE, params.get("owner"), params.get("group"), check_mode
        )
    else:
        new_key, created = load_account_key(path, content, what="new_account_key"), False
    rollover = keychange.ensure_rolled_over(client, new_key, check_mode)
    account = rollover.account
    changed = rollover.changed or created
    contact = acct.contact_for(params.get("email"))
    if contact is not None and sorted(contact) != sorted(account.contact):
        if check_mode:
            account.contact = contact
        else:
            account = acct.update_contact(client, account, contact)
        changed = True
    result = _result(account, rollover.new_thumbprint, changed, False)
    result.update(keychange.as_result(rollover))
    result["new_key_created"] = created
    if created and check_mode:
        # A key not written has no thumbprint worth reporting: the real run generates another.
        result["thumbprint"] = result["new_thumbprint"] = None
    return result


def _absent(client: AcmeClient, check_mode: bool) -> dict[str, t.Any]:
    account = acct.lookup(client)
    if account is None or account.status == "deactivated":
        return _result(account, client.thumbprint, False, False)
    if check_mode:
        account.status = "deactivated"
    else:
        account = acct.deactivate(client, account)
    return _result(account, client.thumbprint, True, False)


def run(params: t.Mapping[str, t.Any], check_mode: bool = False, session: t.Any = None) -> RunResult:
    """The module's result; raises HaproxyAcmeError subclasses."""
    return RunResult(_run(params, check_mode, session))


def _run(params: t.Mapping[str, t.Any], check_mode: bool, session: t.Any) -> dict[str, t.Any]:
    client = client_from_params(params, session=session)
    path, content = params.get("account_key_path"), params.get("account_key_content")
    present = params.get("state", "present") == "present"
    rolling = bool(params.get("new_account_key_path") or params.get("new_account_key_content"))
    if rolling and not present:
        raise ConfigError("new_account_key_path and new_account_key_content roll an account over: they need state: present")
    if rolling:
        client.key = load_account_key(path, content)
        result = _rollover(client, params, check_mode)
        result["ca_requests"] = client.transport.request_count
        return result
    if present and path and not content:
        key, created = ensure_account_key_file(
            path, params.get("account_key_type") or _defaults.KEY_TYPE, params.get("owner"), params.get("group"), check_mode
        )
        if created and check_mode:
            return _result(None, None, True, True)  # a key not written has no account worth asking about
    elif not present and path and not content and not os.path.exists(path):
        return _result(None, None, False, False)  # no key, so no account to deactivate
    else:
        key, created = load_account_key(path, content), False
    client.key = key
    result = _present(client, params, check_mode, created) if present else _absent(client, check_mode)
    result["thumbprint"] = jws.thumbprint(key)
    result["ca_requests"] = client.transport.request_count
    return result
