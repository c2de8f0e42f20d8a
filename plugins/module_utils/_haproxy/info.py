# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a running HAProxy holds: every certificate with its details, in few round trips.

One connection in prompt mode: ``show ssl cert`` (names and the open
transaction), then every ``show ssl cert <name>`` pipelined, then the crt-lists
(``show ssl crt-list`` and each list's entries) to say which list serves what,
then ``show info`` for the process (its PID and uptime prove that no reload
happened between two reads).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import typing as t
from dataclasses import dataclass, field

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import HaproxyAcmeError
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import commands as cmd
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.module_args import (
    INFO_FIELDS,
    as_json,
    socket_list,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.parse import (
    RuntimeCert,
    is_not_found,
    parse_cert_detail,
    parse_cert_list,
    parse_crt_list,
    parse_crt_lists,
    parse_fields,
    raise_for_reply,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.transport import RuntimeApi, timeout_option
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._index import BundleIndex
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._lock import held
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._module import RunResult
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._time import isoformat, utcnow

_LOCKED = "Operations on certificates are currently locked!"

#: How long a read waits for the run lock to keep what it learned of the bundles (then it does not).
INDEX_LOCK_TIMEOUT = 2.0

#: (the index's name for the facts, how to compute them from a bundle's bytes)
FactsSource = t.Tuple[str, t.Callable[[bytes], t.Optional[t.Dict[str, t.Any]]]]


@dataclass
class Inventory:
    """Everything ``haproxy_runtime_cert_info`` reports."""

    certificates: list[dict[str, t.Any]] = field(default_factory=list)
    transaction: str | None = None
    crt_lists: dict[str, list[str]] | None = field(default_factory=dict)  # None: not shown below level admin
    process: dict[str, t.Any] | None = None  # None: no usable "show info" reply


def read_inventory(
    api: RuntimeApi,
    names: t.Sequence[str] | None = None,
    expiring_within_days: float | None = None,
    now: dt.datetime | None = None,
    retry_for: float = 5.0,
) -> Inventory:
    """Certificates HAProxy holds (or those named), optionally only those expiring soon."""
    for name in names or ():
        cmd.check_name(name, "certificate path")
    listing = parse_cert_list(_run(api, cmd.show_certs(), retry_for))
    targets = list(names) if names else listing.names
    replies = api.run_many([cmd.show_cert(name) for name in targets])
    crt_lists = _crt_lists(api, retry_for)
    where: dict[str, list[str]] = {}
    for crt_list, members in (crt_lists or {}).items():
        for member in members:
            where.setdefault(member, []).append(crt_list)
    now = now or utcnow()
    inventory = Inventory(transaction=listing.transaction, crt_lists=crt_lists)
    for name, first in zip(targets, replies):
        reply = _run(api, cmd.show_cert(name), retry_for, check=False) if _LOCKED in first else first
        lists = where.get(name, []) if crt_lists is not None else None
        entry = _entry(name, reply, lists, listing.transaction, now)
        if _keep(entry, expiring_within_days):
            inventory.certificates.append(entry)
    inventory.process = read_process(api)
    return inventory


def read_process(api: RuntimeApi) -> dict[str, t.Any] | None:
    """``{pid, version, uptime_sec}`` of the process behind the socket, from ``show info``.

    With ``haproxy -W``/``-Ws`` (Debian's unit) the stats socket belongs to the
    worker, and a reload starts a new worker: an unchanged ``pid`` between two
    reads proves that HAProxy was neither reloaded nor restarted in between.
    None when the reply has no ``Pid`` line (an old or foreign server).
    """
    fields = parse_fields(api.run(cmd.show_info()))
    pid = _int(fields.get("Pid"))
    if pid is None:
        return None
    return {"pid": pid, "version": _text(fields.get("Version")), "uptime_sec": _int(fields.get("Uptime_sec"))}


def _int(value: t.Any) -> int | None:
    text = _text(value)
    return int(text) if text is not None and text.isascii() and text.isdigit() else None


def _text(value: t.Any) -> str | None:
    if isinstance(value, list):  # parse_fields lists a key seen twice; show info has none
        value = value[0]
    return str(value) if value else None


def _crt_lists(api: RuntimeApi, retry_for: float) -> dict[str, list[str]] | None:
    """Every crt-list with its certificates; None on a socket below level admin.

    HAProxy 2.6 shows certificates from level operator, crt-lists only at admin.
    """
    reply = _run(api, cmd.show_crt_lists(), retry_for, check=False)
    if reply.startswith("Permission denied"):
        return None
    raise_for_reply("show ssl crt-list", reply)
    lists = parse_crt_lists(reply)
    replies = api.run_many([cmd.show_crt_list(name) for name in lists])
    result: dict[str, list[str]] = {}
    for name, first in zip(lists, replies):
        reply = _run(api, cmd.show_crt_list(name), retry_for) if _LOCKED in first else first
        raise_for_reply("show ssl crt-list", reply, name)
        result[name] = [entry.certificate for entry in parse_crt_list(reply)]
    return result


def _entry(
    name: str, reply: str, lists: list[str] | None, transaction: str | None, now: dt.datetime
) -> dict[str, t.Any]:
    cert = RuntimeCert(filename=name, status="Absent") if is_not_found(reply) else parse_cert_detail(reply)
    return describe(cert, lists, transaction == name, now)


def describe(cert: RuntimeCert, lists: list[str] | None, in_transaction: bool, now: dt.datetime) -> dict[str, t.Any]:
    """The JSON-friendly view of one certificate."""
    entry: dict[str, t.Any] = {
        "path": cert.filename,
        "status": cert.status,
        "serial": cert.serial or None,
        "not_before": isoformat(cert.not_before) if cert.not_before else None,
        "not_after": isoformat(cert.not_after) if cert.not_after else None,
        "days_left": round((cert.not_after - now).total_seconds() / 86400.0, 1) if cert.not_after else None,
        "domains": cert.domains,
        "subject": cert.subject or None,
        "issuer": cert.issuer or None,
        "algorithm": cert.algorithm or None,
        "sha1_fingerprint": cert.sha1_fingerprint or None,
        "chain": cert.chain_subjects,
        "crt_lists": lists,
        "transaction": in_transaction,
    }
    return entry


def _keep(entry: dict[str, t.Any], expiring_within_days: float | None) -> bool:
    if expiring_within_days is None:
        return True
    days = entry.get("days_left")
    return days is not None and days < expiring_within_days


def _run(api: RuntimeApi, command: cmd.Command, retry_for: float, check: bool = True) -> str:
    """Run a read-only command, retrying while the certificate lock is held by someone else."""
    deadline = time.monotonic() + retry_for
    while True:
        reply = api.run(command)
        if _LOCKED in reply and time.monotonic() < deadline:
            time.sleep(0.05)
            continue
        if check or _LOCKED in reply:
            raise_for_reply(command.verb, reply)
        return reply


def add_bundle_facts(entries: t.Sequence[dict[str, t.Any]], source: FactsSource | None, *, save: bool = True) -> None:
    """Give every entry ``bundle_facts``: what the renewal rule reads of the file at its path, as
    compact JSON text, from the directory's index while the file is unchanged (_index.py), else
    computed from its bytes; None for no file, an unreadable one, or no ``source`` (the rule's
    code needs cryptography, which the host may lack). What was computed is kept in the index
    when the directory's run lock is free within INDEX_LOCK_TIMEOUT (``save``; not in check mode)."""
    by_dir: dict[str, list[dict[str, t.Any]]] = {}
    for entry in entries:
        entry["bundle_facts"] = None
        path = entry.get("path")
        if source is not None and isinstance(path, str) and os.path.isabs(path):
            by_dir.setdefault(os.path.dirname(path), []).append(entry)
    for directory, group in by_dir.items():
        kind, compute = t.cast(FactsSource, source)
        index = BundleIndex(directory)
        for entry in group:
            try:
                exists, facts = index.get(entry["path"], kind, compute)
            except HaproxyAcmeError:
                continue
            if exists and facts is not None:
                entry["bundle_facts"] = json.dumps(facts, sort_keys=True, separators=(",", ":"))
        if save and index.changed and os.access(directory, os.W_OK | os.X_OK):
            try:
                with held(directory, INDEX_LOCK_TIMEOUT):
                    index.save()
            except HaproxyAcmeError:
                pass  # a deploy holds the directory: the next read computes these again


def only_fields(entries: t.Sequence[dict[str, t.Any]], fields: t.Sequence[str] | None) -> list[dict[str, t.Any]]:
    """The entries with only the keys asked (all when ``fields`` is empty)."""
    if not fields:
        return list(entries)
    keep = [f for f in INFO_FIELDS if f in set(fields)]
    return [{key: entry[key] for key in keep if key in entry} for entry in entries]


# ------------------------------------------------------------- the module


def run(
    params: t.Mapping[str, t.Any], check_mode: bool = False,
    api_factory: t.Callable[[str, float], RuntimeApi] = RuntimeApi,
    facts_source: t.Callable[[], FactsSource | None] = lambda: None,
) -> RunResult:
    """The module's result: never changes anything, so check mode runs the same.

    Every socket is read; the top-level fields are those of the first, and ``sockets``
    holds each one's own (so one ``socket`` list serves both modules).
    """
    timeout = timeout_option(params.get("timeout"))
    views = []
    for address in socket_list(params.get("socket")):
        with api_factory(address, timeout) as api:
            if params.get("process_only"):
                inventory = Inventory(process=read_process(api))
            else:
                inventory = read_inventory(
                    api, params.get("paths") or None, params.get("expiring_within_days"), retry_for=timeout
                )
        if params.get("bundle_facts"):
            add_bundle_facts(inventory.certificates, facts_source(), save=not check_mode)
        inventory.certificates = only_fields(inventory.certificates, params.get("fields"))
        views.append(
            {
                "socket": address,
                "certificates": inventory.certificates,
                "transaction": inventory.transaction,
                "crt_lists": inventory.crt_lists,
                "process": inventory.process,
            }
        )
    if params.get("as_json"):
        for view in views:
            view["certificates_json"] = as_json(t.cast(t.List[t.Dict[str, t.Any]], view.pop("certificates")))
    first = views[0]
    listed = {"certificates_json": first["certificates_json"]} if params.get("as_json") else {
        "certificates": first["certificates"]}
    return RunResult({
        "changed": False,
        **listed,
        "transaction": first["transaction"],
        "crt_lists": first["crt_lists"],
        "process": first["process"],
        "sockets": views,
    })
