# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What ``acme_stateless_order`` does, without Ansible: options in, result dictionary out."""

from __future__ import annotations

import typing as t

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import account as acct
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.account_key import load_account_key
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.client import AcmeClient
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.common_args import client_from_params
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.issuer import (
    MAX_CONCURRENCY,
    CertResult,
    CertSpec,
    Issuer,
    Options,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import ConfigError
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import CertInfo, parse_mode

# Fields of the single certificate's entry repeated at the top level of the result.
TOP_LEVEL = ("name", "domains", "path", "action", "reason", "serial", "not_before", "not_after", "days_left", "issuer",
             "profile", "replaces")


def _spec(entry: t.Mapping[str, t.Any], key_type: str, profile: str | None) -> CertSpec:
    domains = entry.get("domains") or []
    if isinstance(domains, str):
        domains = [domains]
    name = entry.get("name") or (str(domains[0]).lower().rstrip(".") if domains else "")
    return CertSpec(name=str(name), domains=list(domains), key_type=entry.get("key_type") or key_type,
                    profile=entry.get("profile") or profile)


def specs_from_params(params: t.Mapping[str, t.Any]) -> list[CertSpec]:
    key_type = params.get("key_type") or "ec256"
    profile = params.get("profile") or None
    if params.get("certificates"):
        specs = [_spec(entry, key_type, profile) for entry in params["certificates"]]
        names = [s.name for s in specs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"certificate names must be unique; repeated: {', '.join(duplicates)}")
        return specs
    return [_spec(params, key_type, profile)]


def options_from_params(params: t.Mapping[str, t.Any], check_mode: bool) -> Options:
    concurrency = int(4 if params.get("concurrency") is None else params["concurrency"])
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ConfigError(f"concurrency must be between 1 and {MAX_CONCURRENCY}")
    poll_timeout = float(params.get("poll_timeout") or 120)
    remaining = params.get("remaining_days")
    remaining_days = None if remaining is None else float(remaining)
    if poll_timeout <= 0 or (remaining_days is not None and remaining_days < 0):
        raise ConfigError("poll_timeout must be positive and remaining_days not negative")
    if not params.get("cert_dir"):
        raise ConfigError("cert_dir is required")
    return Options(
        cert_dir=str(params["cert_dir"]), remaining_days=remaining_days, force=bool(params.get("force")),
        reuse_key=bool(params.get("reuse_key")), preferred_chain=params.get("preferred_chain") or None,
        owner=params.get("owner"), group=params.get("group"), mode=parse_mode(params.get("mode", "0640")),
        use_ari=bool(params.get("use_ari", True)), concurrency=concurrency, poll_timeout=poll_timeout,
        check_mode=check_mode,
    )


def _account_preparer(client: AcmeClient, params: t.Mapping[str, t.Any]) -> t.Callable[[], None]:
    """Load the key and find (or, with terms_agreed, create) the account: only once an order is due."""

    def prepare() -> None:
        client.key = load_account_key(params.get("account_key_path"), params.get("account_key_content"))
        terms = bool(params.get("terms_agreed"))
        acct.ensure(client, contact=acct.contact_for(params.get("email")), terms_agreed=terms,
                    eab_kid=params.get("eab_kid"), eab_hmac_key=params.get("eab_hmac_key"), allow_create=terms)

    return prepare


def _brief(info: CertInfo | None) -> dict[str, t.Any] | None:
    if info is None:
        return None
    return {"serial": info.serial, "not_after": info.as_dict()["not_after"], "domains": list(info.domains)}


def diff_of(results: t.Sequence[CertResult]) -> dict[str, t.Any]:
    """Metadata only (serial, expiry, names), never key bytes."""
    changed = [r for r in results if r.changed and r.action in ("issued", "renewed")]
    before = {r.name: _brief(r.previous) for r in changed}
    after = {r.name: _brief(r.info) if r.info is not r.previous else {"domains": r.domains, "serial": "(new)"}
             for r in changed}
    return {"before": before, "after": after}


def failure_message(results: t.Sequence[CertResult]) -> str | None:
    failed = [r for r in results if r.action == "failed"]
    if not failed:
        return None
    head = f"{len(failed)} of {len(results)} certificates failed: " if len(results) > 1 else ""
    return head + "; ".join(str(r.msg) for r in failed)


def run(params: t.Mapping[str, t.Any], check_mode: bool = False, session: t.Any = None) -> tuple[dict[str, t.Any], str | None]:
    """(result, failure message or None). ConfigError for options wrong as a whole."""
    options = options_from_params(params, check_mode)
    specs = specs_from_params(params)
    client = client_from_params(params, pool_size=options.concurrency + 2, session=session)
    issuer = Issuer(client, _account_preparer(client, params), options)
    results = issuer.run(specs)
    now = issuer.clock_now()
    result: dict[str, t.Any] = {
        "changed": any(r.changed for r in results),
        "certificates": [r.as_dict(now) for r in results],
        "ca_requests": client.transport.request_count,
        "diff": diff_of(results),
    }
    if not params.get("certificates"):
        result.update({k: result["certificates"][0][k] for k in TOP_LEVEL})
    return result, failure_message(results)
