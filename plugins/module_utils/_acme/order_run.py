# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What ``acme_stateless_order`` does, without Ansible: options in, result dictionary out."""

from __future__ import annotations

import collections
import math
import typing as t

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _defaults, _lock
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import account as acct
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.account_key import load_account_key
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.client import AcmeClient
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.common_args import client_from_params
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.issuer import (
    CertResult,
    CertSpec,
    Issuer,
    Options,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import ConfigError
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._files import owner_ids, parse_mode
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._module import RunResult
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import CertInfo

# Fields of the single certificate's entry repeated at the top level of the result.
TOP_LEVEL = ("name", "domains", "path", "action", "reason", "serial", "not_before", "not_after", "days_left", "issuer",
             "profile", "replaces")


def _spec(entry: t.Any, key_type: str, profile: str | None, where: str) -> CertSpec:
    """One certificate as asked; ``where`` names it in a message (``certificates[2]``, ``domains``)."""
    if not isinstance(entry, t.Mapping):
        raise ConfigError(f"{where} must be a mapping {{name, domains}}, not {entry!r}")
    domains = entry.get("domains")
    if isinstance(domains, str):
        domains = [domains]
    if domains is not None and not isinstance(domains, (list, tuple)):
        raise ConfigError(f"{where}: domains must be a list of DNS names or IP addresses, not {domains!r}")
    domains = list(domains or [])
    name = entry.get("name") or (str(domains[0]).lower().rstrip(".") if domains else "")
    if not name:  # neither a name nor a domain: nothing to name the certificate by
        what = "domains is empty" if where == "domains" else f"{where} has no name and no domains"
        raise ConfigError(f"{what}: give at least one DNS name or IP address")
    facts = entry.get("bundle_facts")
    if facts is not None and not isinstance(facts, str):
        raise ConfigError(f"{where}: bundle_facts must be the JSON text haproxy_runtime_cert_info reports, not {facts!r}")
    return CertSpec(name=str(name), domains=domains, key_type=entry.get("key_type") or key_type,
                    profile=entry.get("profile") or profile, bundle_facts=facts or None)


def specs_from_params(params: t.Mapping[str, t.Any]) -> list[CertSpec]:
    key_type = params.get("key_type") or _defaults.KEY_TYPE
    profile = params.get("profile") or None
    certificates = params.get("certificates")
    if certificates is None:
        return [_spec(params, key_type, profile, "domains")]
    if not isinstance(certificates, (list, tuple)):
        raise ConfigError(f"certificates must be a list of {{name, domains}}, not {certificates!r}")
    if not certificates:
        raise ConfigError("certificates is empty: give at least one {name, domains}")
    specs = [_spec(entry, key_type, profile, f"certificates[{index}]") for index, entry in enumerate(certificates)]
    names = [s.name for s in specs]
    duplicates = sorted(n for n, seen in collections.Counter(names).items() if seen > 1)
    if duplicates:
        raise ConfigError(f"certificate names must be unique; repeated: {', '.join(duplicates)}")
    return specs


def _number(params: t.Mapping[str, t.Any], key: str, what: str) -> float | None:
    """``params[key]`` as a finite number, None when unset; ConfigError naming the option otherwise."""
    value = params.get(key)
    if value is None:
        return None
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ConfigError(f"{key} must be {what}, not {value!r}")
    return number


def options_from_params(params: t.Mapping[str, t.Any], check_mode: bool) -> Options:
    what = f"a whole number from 1 to {_defaults.MAX_CONCURRENCY}"
    concurrency = _number(params, "concurrency", what)
    if concurrency is None:
        concurrency = _defaults.CONCURRENCY
    elif concurrency != int(concurrency) or not 1 <= concurrency <= _defaults.MAX_CONCURRENCY:
        raise ConfigError(f"concurrency must be {what}, not {params['concurrency']!r}")
    what = "a positive number of seconds"
    poll_timeout = _number(params, "poll_timeout", what)
    if poll_timeout is None:
        poll_timeout = _defaults.POLL_TIMEOUT
    elif poll_timeout <= 0:
        raise ConfigError(f"poll_timeout must be {what}, not {params['poll_timeout']!r}")
    remaining_days = _number(params, "remaining_days", "a number of days, or null for the lifetime rule")
    if remaining_days is not None and remaining_days < 0:
        raise ConfigError(f"remaining_days must not be negative (null: the lifetime rule), not {params['remaining_days']!r}")
    if not params.get("cert_dir"):
        raise ConfigError("cert_dir is required")
    owner_ids(params.get("owner"), params.get("group"))  # an unknown user fails now, not after an order
    return Options(
        cert_dir=str(params["cert_dir"]), remaining_days=remaining_days, force=bool(params.get("force")),
        reuse_key=bool(params.get("reuse_key")), preferred_chain=params.get("preferred_chain") or None,
        owner=params.get("owner"), group=params.get("group"), mode=parse_mode(params.get("mode", _defaults.BUNDLE_MODE)),
        use_ari=bool(params.get("use_ari", _defaults.USE_ARI)), concurrency=int(concurrency), poll_timeout=poll_timeout,
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


NAMES_SHOWN = 5


def _names(results: t.Sequence[CertResult]) -> str:
    shown = ", ".join(repr(r.name) for r in results[:NAMES_SHOWN])
    more = len(results) - NAMES_SHOWN
    return f"certificates {shown}" + (f" and {more} more" if more > 0 else "")


def failure_message(results: t.Sequence[CertResult]) -> str | None:
    """One line for the run: certificates that failed for the same reason are named together,
    so an outage reads as one message, not a thousand (each entry keeps its own ``msg``)."""
    failed = [r for r in results if r.action == "failed"]
    if not failed:
        return None
    head = f"{len(failed)} of {len(results)} certificates failed: " if len(results) > 1 else ""
    groups: dict[str, list[CertResult]] = {}
    for result in failed:
        groups.setdefault(result.error or str(result.msg), []).append(result)
    parts: list[str] = []
    for text, members in groups.items():
        if len(members) == 1 or not members[0].error:
            parts.extend(str(m.msg) for m in members)
        else:
            parts.append(f"{_names(members)}: {text}")
    return head + "; ".join(parts)


def run(params: t.Mapping[str, t.Any], check_mode: bool = False, session: t.Any = None) -> RunResult:
    """The result, failed when any certificate failed. ConfigError for options wrong as a whole."""
    options = options_from_params(params, check_mode)
    specs = specs_from_params(params)
    client = client_from_params(params, pool_size=options.concurrency + 2, session=session)
    issuer = Issuer(client, _account_preparer(client, params), options)
    with _lock.run_lock(options.cert_dir, params.get("lock_timeout"), enabled=not options.check_mode):
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
    return RunResult(result, failure_message(results))
