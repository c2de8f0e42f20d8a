# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the ``replace`` playbook decides for a compromised certificate, from what the nodes serve.

Nodes are those of ``_fleet.nodes()``. For each certificate named, the compromised serial
is the one of the copy kept aside (``compromised``); before that copy exists the plan
only says which node to keep it from. The playbook orders, pushes and revokes; these
functions only decide, so that a rerun after any failure picks up where it stopped:

* a new certificate is ordered (``force``) only while no node that answered serves
  another valid copy than the compromised one, and some node that asks for it answered;
  otherwise that copy is the seed (no second order, the new key is not replaced again);
* the old certificate may be revoked only when every node that asks for the
  certificate answered and serves a copy other than the compromised one (``revocable``),
  and it is revoked only when the operator confirms as well (``revoke``).
"""

from __future__ import annotations

import typing as t

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._fleet import Node, bundle_path
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import same_serial

#: What a node serves of a certificate being replaced.
NEW, OLD, MISSING, DOWN = "new", "compromised", "missing", "down"
_WHY = {DOWN: "did not answer", MISSING: "serves no copy of it", OLD: "still serves the compromised serial "}


def _asks(member: Node, name: str) -> bool:
    return name in {c.get("name") for c in member.get("certificates") or []}


def _served(member: Node, path: str) -> dict[str, t.Any] | None:
    return next((e for e in member["served"] if e.get("path") == path and e.get("status") == "Used"), None)


def _state(member: Node, path: str, compromised: str | None) -> tuple[str, str | None]:
    if not member["answered"]:
        return DOWN, None
    entry = _served(member, path)
    if entry is None or not entry.get("serial"):
        return MISSING, None
    serial = str(entry["serial"])
    if compromised is None or same_serial(serial, compromised):
        return OLD, serial
    return NEW, serial


def confirmed(answer: t.Any) -> bool:
    """The operator's confirmation: ``True`` (the flag), or ``yes`` typed at the prompt."""
    return answer is True or (isinstance(answer, str) and answer.strip().lower() == "yes")


def plan(fleet: t.Sequence[Node], names: t.Sequence[str], cert_dir: str,
         compromised: t.Mapping[str, str | None] | None = None, confirm: t.Any = False) -> dict[str, t.Any]:
    """{certificates: [...], nodes: {host: {name: {state, serial}}}, blocking: [...], revocable, confirmed, revoke}.

    Per certificate: ``name``, ``compromised`` (the serial, or None before the copy is
    kept), ``keep_from`` (a node that serves the certificate, to keep the copy from),
    ``seed`` (a node serving a replacement already, or None), ``force`` (order a new one),
    ``new_serial`` (the replacement every node serves, when they agree) and ``blocking``
    (why it may not be revoked yet, each naming the node).
    """
    compromised = dict(compromised or {})
    certificates: list[dict[str, t.Any]] = []
    report: dict[str, dict[str, dict[str, str | None]]] = {}
    blocking: list[str] = []
    for name in names:
        path = bundle_path(cert_dir, name)
        old = compromised.get(name)
        askers = [m for m in fleet if _asks(m, name)]
        states = {m["name"]: _state(m, path, old) for m in askers}
        for host, (state, serial) in states.items():
            report.setdefault(host, {})[name] = {"state": state, "serial": serial}
        holders = [h for h, (state, _serial) in states.items() if state == OLD]
        fresh = [h for h, (state, _serial) in states.items() if state == NEW]
        new_serials = {states[h][1] for h in fresh}
        reasons = [f"{host} {_WHY[state]}{serial or ''}" for host, (state, serial) in states.items() if state != NEW]
        if len(new_serials) > 1:
            reasons.append("the nodes serve different replacements: " + ", ".join(sorted(str(s) for s in new_serials)))
        if not askers:
            reasons.append("no node asks for it (haproxy_acme_certificates)")
        if old is None:
            reasons.append("its compromised copy is not kept yet")
        why_not = [f"{name}: {why}" for why in reasons]
        certificates.append({
            "name": name,
            "compromised": old,
            "keep_from": holders[0] if holders else None,
            "seed": fresh[0] if fresh and old is not None else None,
            "force": old is not None and not fresh and any(state != DOWN for state, _serial in states.values()),
            "new_serial": new_serials.pop() if len(new_serials) == 1 else None,
            "blocking": why_not,
        })
        blocking += why_not
    sure = confirmed(confirm)
    return {"certificates": certificates, "nodes": report, "blocking": blocking, "revocable": not blocking,
            "confirmed": sure, "revoke": not blocking and sure}
