# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ACME accounts (RFC 8555 section 7.3): look up, create (with EAB), update contact, deactivate."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import jws
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.client import AcmeClient
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import AcmeError, AcmeProblem, ConfigError


@dataclass
class Account:
    """An account as the server describes it."""

    uri: str
    status: str
    contact: list[str] = field(default_factory=list)
    created: bool = False

    @classmethod
    def from_response(cls, uri: str | None, data: t.Mapping[str, t.Any], created: bool = False) -> Account:
        if not uri:
            raise AcmeError("the ACME server did not return the account URL (Location header)")
        contact = data.get("contact")
        return cls(
            uri=uri,
            status=str(data.get("status", "valid")),
            contact=[str(c) for c in contact] if isinstance(contact, list) else [],
            created=created,
        )


def contact_for(email: str | None) -> list[str] | None:
    """``mailto:`` URIs for ``email`` (comma-separated allowed); None when contact is not managed."""
    if email is None:
        return None
    addresses = [a.strip() for a in email.split(",") if a.strip()]
    for address in addresses:
        if "@" not in address or any(c.isspace() for c in address):
            raise ConfigError(f"invalid email address {address!r}", email=address)
    return [f"mailto:{a}" for a in addresses]


def lookup(client: AcmeClient) -> Account | None:
    """The account of ``client.key``, or None (``onlyReturnExisting``, section 7.3.1)."""
    try:
        response = client.post(
            client.directory["newAccount"], {"onlyReturnExisting": True}, use_jwk=True
        )
    except AcmeProblem as exc:
        if exc.short_type == "accountDoesNotExist":
            return None
        if exc.short_type == "unauthorized" and "deactivated" in exc.detail.lower():
            # Section 7.3.6: a deactivated account's requests are refused with unauthorized.
            return Account(uri="", status="deactivated")
        raise
    account = Account.from_response(response.location, response.json())
    client.kid = account.uri
    return account


def _new_account_payload(
    client: AcmeClient, contact: list[str] | None, terms_agreed: bool,
    eab_kid: str | None, eab_hmac_key: str | None,
) -> dict[str, t.Any]:
    payload: dict[str, t.Any] = {}
    if terms_agreed:
        payload["termsOfServiceAgreed"] = True
    if contact:
        payload["contact"] = contact
    if eab_kid or eab_hmac_key:
        if not (eab_kid and eab_hmac_key):
            raise ConfigError("external account binding needs both eab_kid and eab_hmac_key")
        url = client.directory["newAccount"]
        payload["externalAccountBinding"] = jws.eab_binding(client.account_key, eab_kid, eab_hmac_key, url)
    elif client.directory.eab_required:
        raise ConfigError(
            f"the ACME server {client.directory_url} requires external account binding: set eab_kid and eab_hmac_key"
        )
    return payload


def create(
    client: AcmeClient, contact: list[str] | None, terms_agreed: bool,
    eab_kid: str | None = None, eab_hmac_key: str | None = None,
) -> Account:
    """Register the key (section 7.3); returns the existing account if the server already knows it."""
    if not terms_agreed and client.directory.terms_of_service:
        raise ConfigError(
            f"the ACME server requires agreeing to its terms of service ({client.directory.terms_of_service}): "
            "set terms_agreed: true"
        )
    payload = _new_account_payload(client, contact, terms_agreed, eab_kid, eab_hmac_key)
    response = client.post(client.directory["newAccount"], payload, use_jwk=True)
    account = Account.from_response(response.location, response.json(), created=response.status == 201)
    client.kid = account.uri
    return account


def update_contact(client: AcmeClient, account: Account, contact: list[str]) -> Account:
    """Replace the account's contact URIs (section 7.3.2)."""
    response = client.post(account.uri, {"contact": contact})
    return Account.from_response(account.uri, response.json())


def deactivate(client: AcmeClient, account: Account) -> Account:
    """Deactivate the account for good (section 7.3.6): the CA will refuse every later request.

    Sent again when its reply is lost; the CA then refuses the second one as coming from a
    deactivated account, which is what was asked.
    """
    try:
        response = client.post(account.uri, {"status": "deactivated"})
    except AcmeProblem as exc:
        if exc.short_type == "unauthorized" and "deactivated" in exc.detail.lower():
            return Account(uri=account.uri, status="deactivated", contact=list(account.contact))
        raise
    return Account.from_response(account.uri, response.json())


def ensure(
    client: AcmeClient,
    *,
    contact: list[str] | None,
    terms_agreed: bool,
    eab_kid: str | None = None,
    eab_hmac_key: str | None = None,
    allow_create: bool = True,
) -> Account:
    """Look the account up, create it when missing and allowed; ConfigError when not allowed."""
    account = lookup(client)
    if account is not None and account.status == "deactivated":
        raise AcmeError("the ACME account of this key is deactivated: use another account key")
    if account is not None:
        return account
    if not allow_create:
        raise ConfigError(
            "no ACME account exists for this account key at "
            f"{client.directory_url}: create it with tlsops.haproxy_acme.acme_account or set terms_agreed: true"
        )
    return create(client, contact, terms_agreed, eab_kid, eab_hmac_key)
