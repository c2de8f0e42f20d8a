# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the playbooks decide about a fleet, as pure functions of what the nodes reported.

The playbooks (``fleet_issue.yml``, ``report.yml``) only orchestrate; the filter plugins
``fleet_nodes``, ``fleet_plan``, ``fleet_push``, ``fleet_summary`` and ``fleet_report``
call these functions. A *node* is a plain dictionary (``nodes()`` builds them):

    name           the inventory host
    answered       whether it answered ``haproxy_runtime_cert_info`` (served is its list)
    certificates   the list of {name, domains[, key_type][, profile]} it asks for; None or
                   empty when unknown or unset (the report then expects what any node serves)
    served         RV(certificates) of haproxy_runtime_cert_info; empty when not answered
    process        RV(process) of that read (worker PID, HAProxy version), or None
    deployed       RV(certificates) of haproxy_runtime_cert after the push, or None
    process_after  RV(process) of the read after the push, or None

Nothing here does I/O or imports Ansible; "now" is a parameter wherever time matters.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import typing as t

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _defaults
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.timing import DAY_SECONDS, due_by_time
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._time import parse_time

Node = t.Dict[str, t.Any]

#: The report's states, in the order it lists them.
STATES = ("in sync", "due", "expired", "older", "missing", "unreachable")
#: A node's overall state is the worst of its certificates' (unreachable: it did not answer).
_SEVERITY = ("expired", "missing", "older", "due", "in sync")
_DRIFT = ("older", "missing")
_MODE_NOISE = re.compile(r"; mode/owner/group (fixed|differ from what is asked)")
_MARKDOWN = re.compile(r"([\\`*_|\[\]<>~#])")


# ------------------------------------------------------------------ nodes


def plain(value: t.Any) -> t.Any:
    """A deep copy made of dicts, lists and scalars (Ansible hands over lazy mappings)."""
    if isinstance(value, t.Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def entries(result: t.Mapping[str, t.Any], decode: bool = True) -> t.Any:
    """A result's ``certificates``: its list, or the list in its ``certificates_json`` (the modules'
    ``as_json``); with ``decode`` false that text as it is. None when it has neither, or bad JSON."""
    listed = result.get("certificates")
    if isinstance(listed, list):
        return listed
    text = result.get("certificates_json")
    if not isinstance(text, str):
        return None
    return json_list(text) if decode else text


def json_list(text: str) -> list[t.Any] | None:
    """The list a JSON text holds; None for anything else."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, list) else None


def _read(result: t.Any, decode: bool = True) -> tuple[bool, t.Any, dict[str, t.Any] | None]:
    """(answered, certificates, process) of a registered haproxy_runtime_cert_info result;
    with ``decode`` false, certificates read as_json stay one JSON text (as_nodes decodes it)."""
    if not isinstance(result, dict) or result.get("failed") or result.get("unreachable") or result.get("skipped"):
        return False, [], None
    certificates = entries(result, decode)
    if certificates is None:
        return False, [], None
    process = result.get("process")
    return True, certificates, process if isinstance(process, dict) else None


#: What the rules read of a registered result; the rest (``sockets``, which repeats
#: ``certificates``, ``invocation``...) is not copied: each value read through Ansible's
#: lazy containers costs, and a fleet reads results of hundreds of entries from every node.
#: Read ``as_json``, those entries are one string per node, and a string costs nothing to copy.
_RESULT_KEYS = ("failed", "unreachable", "skipped", "certificates", "certificates_json", "process")

Names = t.Union[str, t.Sequence[str], None]


def result_copy(value: t.Any) -> t.Any:
    """:func:`plain` of what the rules read of a registered result (_RESULT_KEYS); None for no mapping."""
    return {k: plain(value[k]) for k in _RESULT_KEYS if k in value} if isinstance(value, t.Mapping) else None


def node(name: str, host_vars: t.Mapping[str, t.Any], *, certificates: Names = None, served: Names = None,
         deployed: Names = None, served_after: Names = None) -> Node:
    """One node from its host variables, each argument naming the variable to read. A result may be
    named by a list of variables: the first that holds one that was not skipped is read."""

    def var(key: Names) -> t.Any:
        # A JSON text (the role's _haproxy_acme_certificates_json) stays text: as_nodes decodes it.
        return plain(host_vars.get(key)) if isinstance(key, str) and key in host_vars else None

    def result(keys: Names) -> t.Any:
        found: t.Any = None
        for key in [keys] if isinstance(keys, str) else list(keys or ()):
            found = result_copy(host_vars.get(key) if key in host_vars else None)
            if isinstance(found, dict) and not found.get("skipped"):
                return found
        return found

    asked = var(certificates)
    asked = asked if isinstance(asked, (list, str)) else None
    # Entries read as_json stay JSON text here: between two filters Ansible wraps every value
    # in a lazy container, and a string is the one thing it does not walk. as_nodes decodes them.
    answered, listed, process = _read(result(served), decode=False)
    pushed = result(deployed)
    return {
        "name": name,
        "answered": answered,
        "certificates": asked,
        "served": listed,
        "process": process,
        "deployed": entries(pushed, decode=False) if isinstance(pushed, dict) else None,
        "process_after": _read(result(served_after), decode=False)[2],
    }


def nodes(hosts: t.Iterable[str], hostvars: t.Mapping[str, t.Mapping[str, t.Any]], **names: Names) -> list[Node]:
    """``node()`` for every host, in order; a host without variables is a node that did not answer."""
    # Not hostvars.get(): Ansible's HostVars answers an unknown host with an undefined marker.
    return [node(str(host), hostvars[host] if host in hostvars else {}, **names) for host in hosts]  # noqa: SIM401


# ------------------------------------------------------------- plan & seed


def bundle_path(cert_dir: str, name: str) -> str:
    return f"{cert_dir.rstrip('/')}/{name}.pem"


def identity(cert: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """What makes two definitions of one name the same certificate: names, key type, profile."""
    return {
        "domains": sorted({str(d).lower() for d in cert.get("domains") or []}),
        "key_type": cert.get("key_type") or _defaults.KEY_TYPE,
        "profile": cert.get("profile") or "",
    }


def _describe(ident: t.Mapping[str, t.Any]) -> str:
    profile = f"profile {ident['profile']}" if ident["profile"] else "no profile"
    return f"domains {', '.join(ident['domains']) or 'none'}, key type {ident['key_type']}, {profile}"


def _conflict(name: str, variants: list[tuple[dict[str, t.Any], list[str]]]) -> dict[str, t.Any]:
    differ = [key for key in ("domains", "key_type", "profile") if len({repr(v[0][key]) for v in variants}) > 1]
    text = "; ".join(f"{', '.join(hosts)}: {_describe(ident)}" for ident, hosts in variants)
    return {"name": name, "nodes": [host for variant in variants for host in variant[1]], "differ": differ,
            "reason": f"{name} ({text})"}


def fleet_certificates(fleet: t.Sequence[Node]) -> tuple[list[dict[str, t.Any]], list[dict[str, t.Any]]]:
    """Every certificate the answering nodes ask for, once (the first definition), and the
    names defined differently by different nodes (a fleet orders each name once)."""
    certificates: list[dict[str, t.Any]] = []
    variants: dict[str, list[tuple[dict[str, t.Any], list[str]]]] = {}
    for member in fleet:
        if not member["answered"]:
            continue
        for cert in member["certificates"] or []:
            ident = identity(cert)
            seen = variants.setdefault(cert["name"], [])
            if not seen:
                certificates.append(cert)
            match = next((hosts for known, hosts in seen if known == ident), None)
            if match is None:
                seen.append((ident, [member["name"]]))
            elif member["name"] not in match:
                match.append(member["name"])
    conflicts = [_conflict(name, found) for name, found in variants.items() if len(found) > 1]
    return certificates, conflicts


def _used(entry: t.Mapping[str, t.Any], path: str) -> bool:
    return entry.get("path") == path and entry.get("status") == "Used"


def _days_left(entry: t.Mapping[str, t.Any]) -> float | None:
    days = entry.get("days_left")
    return float(days) if isinstance(days, (int, float)) and not isinstance(days, bool) else None


def _after(entry: t.Mapping[str, t.Any]) -> dt.datetime | None:
    return parse_time(entry.get("not_after"))


def seeds(certificates: t.Sequence[t.Mapping[str, t.Any]], fleet: t.Sequence[Node],
          cert_dir: str) -> list[dict[str, t.Any]]:
    """Per certificate, a node that serves its newest valid copy: [{name, host, serial, not_after,
    facts, copy}].

    Newest: the latest notAfter among copies served (status Used) that have not expired,
    counting only the answering nodes that ask for the certificate. Nodes serving that
    very copy share the work: the n-th certificate goes to the (n mod k)-th of its k
    holders, so that the nodes hand their bundles over in parallel. A certificate no
    node serves gets no seed (it is ordered).

    ``facts`` is what that node said of its file (haproxy_runtime_cert_info's
    ``bundle_facts``), or None. ``copy`` says whether the file itself must come to the
    controller: when there are no facts, or some node that asks for the certificate does
    not serve the serial of that file (it must be sent it, or the holder's file is not
    what it serves). Otherwise the order step decides from the facts, and nothing is sent.
    """
    # Once per node, not per certificate: the names it asks for, and its copies in service by path.
    holding = []
    for member in fleet:
        if not member["answered"]:
            continue
        by_path: dict[str, list[dict[str, t.Any]]] = {}
        for entry in member["served"]:
            if entry.get("status") == "Used":
                by_path.setdefault(entry.get("path"), []).append(entry)
        holding.append((member["name"], {c.get("name") for c in member["certificates"] or []}, by_path))
    result = []
    for index, cert in enumerate(certificates):
        path = bundle_path(cert_dir, cert["name"])
        best: dict[str, t.Any] | None = None
        best_after: dt.datetime | None = None
        holders: list[tuple[str, dict[str, t.Any]]] = []
        serving: list[set[str | None]] = []  # per asking node, the serials it serves at path
        for host, asks, by_path in holding:
            if cert["name"] not in asks:
                continue
            serving.append({_serial(e.get("serial")) for e in by_path.get(path, ())})
            for entry in by_path.get(path, ()):
                after, days = _after(entry), _days_left(entry)
                if after is None or days is None or days <= 0:
                    continue
                if best_after is None or after > best_after:
                    best, best_after, holders = entry, after, [(host, entry)]
                elif best is not None and after == best_after and entry.get("serial") == best.get("serial"):
                    holders.append((host, entry))
        if best is not None:
            host, entry = holders[index % len(holders)]
            facts = entry.get("bundle_facts") if isinstance(entry.get("bundle_facts"), str) else None
            on_disk = facts_serial(facts)
            result.append({"name": cert["name"], "host": host, "serial": best.get("serial"),
                           "not_after": best.get("not_after"), "facts": facts,
                           "copy": on_disk is None or any(on_disk not in serials for serials in serving)})
    return result


def facts_serial(facts: str | None) -> str | None:
    """The serial of the file ``bundle_facts`` describe, in _serial's spelling; None when unknown."""
    try:
        data = json.loads(facts) if facts else None
        return _serial(data["info"]["serial"]) if isinstance(data, dict) and "unusable" not in data else None
    except (KeyError, TypeError, ValueError):
        return None


def plan(fleet: t.Sequence[Node], cert_dir: str) -> dict[str, t.Any]:
    """{certificates, conflicts, seeds}: what the fleet orders and where each seed comes from;
    a certificate whose seed need not be copied carries its ``bundle_facts`` for the order step."""
    certificates, conflicts = fleet_certificates(fleet)
    found = seeds(certificates, fleet, cert_dir)
    known = {seed["name"]: seed["facts"] for seed in found if not seed["copy"]}
    certificates = [{**c, "bundle_facts": known[c["name"]]} if c["name"] in known else c for c in certificates]
    seed_files: dict[str, list[str]] = {}
    for seed in found:
        if seed["copy"]:
            seed_files.setdefault(str(seed["host"]), []).append(f"{seed['name']}.pem")
    return {"certificates": certificates, "conflicts": conflicts, "seeds": found, "seed_files": seed_files}


def push(certificates: t.Sequence[t.Mapping[str, t.Any]], cert_dir: str,
         bundles: t.Mapping[str, str]) -> list[dict[str, t.Any]]:
    """haproxy_runtime_cert's ``certificates`` for one node: each certificate it asks for
    that has a bundle (``bundles`` maps the controller's file paths to their PEM text);
    one whose order failed and that no node served has none and is left out."""
    by_file = {str(path).rsplit("/", 1)[-1]: pem for path, pem in bundles.items()}
    return [{"path": bundle_path(cert_dir, cert["name"]), "pem_content": by_file[f"{cert['name']}.pem"],
             "expected_domains": list(cert.get("domains") or [])}
            for cert in certificates if f"{cert['name']}.pem" in by_file]


def host_push(certificates: t.Sequence[t.Mapping[str, t.Any]], cert_dir: str) -> list[dict[str, t.Any]]:
    """haproxy_runtime_cert's ``certificates`` on a host that orders for itself: each
    certificate's bundle where the order wrote it, deployed from there (``pem_src`` =
    ``path``: read on the host, compared from the directory's index while unchanged)."""
    return [{"path": bundle_path(cert_dir, cert["name"]), "pem_src": bundle_path(cert_dir, cert["name"]),
             "expected_domains": list(cert.get("domains") or [])} for cert in certificates]


def _serial(value: t.Any) -> str | None:
    """A hex serial in one spelling (upper case, no separators or leading zeros); None when there is none."""
    text = str(value or "").replace(":", "").strip().upper()
    return (text.lstrip("0") or "0") if text else None


def stale(certificates: t.Sequence[t.Mapping[str, t.Any]], cert_dir: str, bundle_files: t.Sequence[str],
          served: t.Any, issued: t.Any) -> list[str]:
    """Of the controller's bundle files, those one node must be sent: the bundle of each
    certificate it asks for, unless the node already serves (status Used) the serial the
    order step ended with for it. ``served`` is the node's haproxy_runtime_cert_info result
    from before the order, ``issued`` the order step's RV(certificates); a certificate
    whose serial is unknown on either side is sent."""
    return _stale(certificates, cert_dir, _by_file(bundle_files), _read(served)[1], _ended(issued))


def stale_nodes(fleet: t.Sequence[Node], cert_dir: str, bundle_files: t.Sequence[str],
                issued: t.Any) -> dict[str, list[str]]:
    """:func:`stale` for every answering node at once, from the nodes' ``served`` (the read before
    the order): {node: the bundle files it must be sent}, only nodes with at least one. One
    computation on the controller, instead of a filter over each node's variables."""
    by_file, ended = _by_file(bundle_files), _ended(issued)
    result = {}
    for member in fleet:
        if member["answered"]:
            files = _stale(member["certificates"] or [], cert_dir, by_file, member["served"], ended)
            if files:
                result[member["name"]] = files
    return result


def _by_file(bundle_files: t.Sequence[str]) -> dict[str, str]:
    return {str(path).rsplit("/", 1)[-1]: str(path) for path in bundle_files}


def _ended(issued: t.Any) -> dict[str, str | None]:
    """The serial the order step ended with, by certificate name."""
    ended: dict[str, str | None] = {}
    for result in issued if isinstance(issued, list) else []:
        if isinstance(result, dict) and isinstance(result.get("name"), str):
            ended[result["name"]] = _serial(result.get("serial"))
    return ended


def _stale(certificates: t.Sequence[t.Mapping[str, t.Any]], cert_dir: str, by_file: t.Mapping[str, str],
           served: t.Sequence[t.Any], ended: t.Mapping[str, str | None]) -> list[str]:
    serving: dict[t.Any, str | None] = {}
    for entry in served:
        if isinstance(entry, dict) and entry.get("status") == "Used":
            serving[entry.get("path")] = _serial(entry.get("serial"))
    files: list[str] = []
    for cert in certificates:
        name = cert["name"]
        file = by_file.get(f"{name}.pem")
        if file is None:
            continue
        if ended.get(name) is None or serving.get(bundle_path(cert_dir, name)) != ended[name]:
            files.append(file)
    return files


def served_now(member: Node, now: dt.datetime) -> list[dict[str, t.Any]]:
    """What a node serves after its push: the entries of its read before the push, each replaced
    by what the push (``deployed``) reports for that path when the push left HAProxy serving a
    copy (a status, a serial); days left are counted from ``now``. A node not pushed to: its read."""
    pushed: dict[t.Any, dict[str, t.Any]] = {}
    for entry in member["deployed"] or []:
        if (isinstance(entry, dict) and entry.get("status") in ("Used", "Unused") and entry.get("serial")
                and entry.get("action") != "failed"):
            after = parse_time(entry.get("not_after"))
            days = None if after is None else round((after - now).total_seconds() / DAY_SECONDS, 1)
            copy = {key: entry.get(key) for key in ("path", "status", "serial", "not_before", "not_after")}
            pushed[entry.get("path")] = {**copy, "days_left": days}
    result = [pushed.pop(e.get("path"), e) if isinstance(e, dict) else e for e in member["served"]]
    return result + list(pushed.values())


# ---------------------------------------------------------------- summary


def _cert_name(path: str) -> str:
    base = str(path).rsplit("/", 1)[-1]
    return base[:-4] if base.endswith(".pem") else base


def summary(issued: t.Any, fleet: t.Sequence[Node], play_hosts_all: t.Sequence[str]) -> dict[str, t.Any]:
    """What a fleet run did (docs/fleet.md): orders, per certificate the order step's
    outcome, per node what it now serves that it did not, who did not answer, worker PIDs.

    ``fleet`` holds the nodes still in the play at the end; the others did not answer."""
    results = issued.get("certificates") if isinstance(issued, dict) else None
    results = results if isinstance(results, list) else []
    updated = {}
    for member in fleet:
        changed = [_cert_name(c["path"]) for c in member["deployed"] or [] if c.get("changed")]
        if changed:
            updated[member["name"]] = changed
    present = {member["name"] for member in fleet}
    return {
        "orders": sum(1 for c in results if c.get("action") in ("issued", "renewed")),
        # The order step ran on scratch copies: what it says about their file modes is noise.
        "certificates": [{"name": c.get("name"), "action": c.get("action"),
                          "reason": _MODE_NOISE.sub("", str(c.get("reason") or "")), "serial": c.get("serial")}
                         for c in results],
        "updated": updated,
        "not_answering": [h for h in play_hosts_all if h not in present],
        "worker_pids": {m["name"]: [(m["process"] or {}).get("pid"), (m["process_after"] or {}).get("pid")]
                        for m in fleet},
    }


# ----------------------------------------------------------------- report


def threshold(remaining_days: t.Any) -> float | None:
    """``haproxy_acme_remaining_days`` as a number; empty or null: the lifetime rule."""
    return None if remaining_days in (None, "") else float(remaining_days)


def due(served: t.Mapping[str, t.Any], remaining_days: t.Any, now: dt.datetime) -> bool:
    """The time part of the renewal rule on served dates (timing.due_by_time); unknown dates: not due."""
    not_before, not_after = parse_time(served.get("not_before")), parse_time(served.get("not_after"))
    if not_before is None or not_after is None:
        return False
    return due_by_time(not_before, not_after, threshold(remaining_days), now)[0]


def renewal_rule(remaining_days: t.Any) -> str:
    days = threshold(remaining_days)
    rule = (f"{days:g} days left" if days is not None
            else "a third of each certificate's lifetime left (half under 10 days)")
    return f"{rule}, or the CA's renewal window (ARI)"


def _wanted(fleet: t.Sequence[Node], cert_dir: str) -> tuple[list[str], dict[str, list[str]]]:
    """Every certificate path in the report, and per node those it should serve: its own
    certificates, or, when it has none, whatever any answering node serves from cert_dir."""
    prefix = cert_dir.rstrip("/") + "/"
    served_paths: list[str] = []
    for member in fleet:
        for entry in member["served"]:
            path = str(entry.get("path") or "")
            if path.startswith(prefix) and path not in served_paths:
                served_paths.append(path)
    paths: list[str] = []
    wanted = {}
    for member in fleet:
        own = [bundle_path(cert_dir, c["name"]) for c in member["certificates"] or []]
        wanted[member["name"]] = own or served_paths
        paths.extend(p for p in wanted[member["name"]] if p not in paths)
    return paths, wanted


def _reference(fleet: t.Sequence[Node], path: str) -> dict[str, t.Any] | None:
    """The newest copy any answering node serves (latest notAfter, status Used)."""
    best: dict[str, t.Any] | None = None
    for member in fleet:
        for entry in member["served"]:
            after = _after(entry)
            if _used(entry, path) and after is not None and (best is None or after > t.cast(dt.datetime, _after(best))):
                best = entry
    return best


def _state(member: Node, served: t.Mapping[str, t.Any] | None, reference: t.Mapping[str, t.Any] | None, *,
           is_fleet: bool, remaining_days: t.Any, now: dt.datetime) -> str:
    days = _days_left(served or {})
    if not member["answered"]:
        return "unreachable"
    if not served:
        return "missing"
    if is_fleet and served.get("serial") != (reference or {}).get("serial"):
        return "older"
    if days is not None and days < 0:
        return "expired"
    if due(served, remaining_days, now):
        return "due"
    return "in sync"


def urgency(row: t.Mapping[str, t.Any]) -> tuple[float, int, str, str]:
    """Sort key of the report's rows: days left, ascending (a certificate a node does not
    serve, or serves without dates, first; a node that did not answer last), then drift
    first, then certificate and node."""
    days = row.get("days_left")
    if row["state"] == "unreachable":
        key = math.inf
    elif days is None:
        key = -math.inf
    else:
        key = float(days)
    return key, 0 if row.get("drift") else 1, str(row["certificate"]), str(row["node"])


def _row(member: Node, path: str, served: t.Mapping[str, t.Any] | None, reference: t.Mapping[str, t.Any] | None, *,
         state: str, is_fleet: bool) -> dict[str, t.Any]:
    served = served or {}
    return {
        "certificate": _cert_name(path), "path": path, "node": member["name"], "state": state,
        "drift": None if state == "unreachable" else state in _DRIFT,
        "serial": served.get("serial"), "reference_serial": (reference or {}).get("serial") if is_fleet else None,
        "not_after": served.get("not_after"), "days_left": _days_left(served),
        "issuer": served.get("issuer"), "domains": list(served.get("domains") or []),
    }


def _node_line(member: Node, rows: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    """A node's line: its worst state (None when it should serve nothing), drift, HAProxy."""
    mine = [r for r in rows if r["node"] == member["name"]]
    states = {r["state"] for r in mine} if member["answered"] else {"unreachable"}
    process = member["process"] or {}
    return {"name": member["name"], "answered": member["answered"],
            "state": next((s for s in (*_SEVERITY, "unreachable") if s in states), None),
            "states": [s for s in STATES if s in states],
            "certificates": len(mine), "drift": [r["certificate"] for r in mine if r["drift"]],
            "haproxy_version": process.get("version"), "worker_pid": process.get("pid")}


def report(fleet: t.Sequence[Node], cert_dir: str, remaining_days: t.Any = None, is_fleet: bool = True,
           now: dt.datetime | None = None) -> dict[str, t.Any]:
    """The certificate x node report (docs/fleet.md, "The report").

    Per certificate, in a fleet, the reference is the newest copy any node serves;
    standalone hosts each have their own copy, so "older" does not apply to them. A row's
    state is one of STATES: in sync (serves the reference copy), due (the same, due by its
    dates), expired (the same, expired), older (drift: another copy), missing (drift: not
    served), unreachable (the node did not answer). Rows come most urgent first (urgency).
    Node counts are per state: a node counts once in each state one of its rows has.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    paths, wanted = _wanted(fleet, cert_dir)
    rows = []
    for path in paths:
        reference = _reference([m for m in fleet if m["answered"]], path)
        for member in fleet:
            if path not in wanted[member["name"]]:
                continue
            served = next((e for e in reversed(member["served"]) if _used(e, path)), None)
            state = _state(member, served, reference, is_fleet=is_fleet, remaining_days=remaining_days, now=now)
            rows.append(_row(member, path, served, reference, state=state, is_fleet=is_fleet))
    lines = [_node_line(member, rows) for member in fleet]
    rows.sort(key=urgency)
    drifting = {r["certificate"] for r in rows if r["drift"]}
    return {
        "generated": now.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "topology": "fleet" if is_fleet else "standalone",
        "renewal_rule": renewal_rule(remaining_days),
        "states": list(STATES),
        "counts": {"nodes": len(fleet), "answered": sum(1 for m in fleet if m["answered"]),
                   "rows": len(rows),
                   "states": {s: sum(1 for line in lines if s in line["states"]) for s in STATES}},
        "drift": [_cert_name(p) for p in paths if _cert_name(p) in drifting],
        "unreachable": [m["name"] for m in fleet if not m["answered"]],
        "nodes": lines,
        "rows": rows,
    }


def markdown_escape(value: t.Any) -> str:
    """Text for a Markdown table cell: ``|``, ``*``, ``_``, backticks and the like backslash-escaped,
    line breaks as spaces."""
    text = "" if value is None else str(value)
    return _MARKDOWN.sub(r"\\\1", " ".join(text.splitlines()))


# ------------------------------------------------------------- validation


def invalid_certificates(certificates: t.Any) -> str | None:
    """Why a certificate list cannot be used, or None."""
    if not isinstance(certificates, list):
        return "the certificates must be a list of {name, domains[, key_type][, profile]}"
    for cert in certificates:
        if not isinstance(cert, dict) or not isinstance(cert.get("name"), str) or not cert["name"]:
            return f"each certificate needs a name, not {cert!r}"
        if not isinstance(cert.get("domains", []), list):
            return f"the domains of certificate {cert['name']!r} must be a list"
    return None


def playbook_problems(certificates: t.Any, *, terms_agreed: t.Any, topology: str, account_key_content: t.Any,
                      account_key_path: t.Any, directory: t.Any) -> list[str]:
    """What keeps ``site`` or ``renew`` from running on a host, each saying what to set; empty when
    nothing does. The role's argument spec has checked types and choices already."""
    problems = []
    names = [c.get("name") for c in certificates if isinstance(c, dict)] if isinstance(certificates, list) else []
    if not names or len(set(names)) != len(names) or len(names) != len(certificates):
        problems.append("Set haproxy_acme_certificates to a list of {name, domains[, key_type][, profile]} "
                        "with unique names, e.g. [{name: example.com, domains: [example.com, www.example.com]}].")
    if terms_agreed is not True:
        problems.append(f"Set haproxy_acme_terms_agreed to true once you have read the ACME CA's terms of service "
                        f"({directory}); the account cannot be created without it.")
    if topology == "fleet" and not account_key_content and not account_key_path:
        problems.append("A fleet keeps the ACME account key on the controller: set haproxy_acme_account_key_path "
                        "(a file on the controller, created if missing) or haproxy_acme_account_key_content "
                        "(e.g. from an AWX credential).")
    return problems


_JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_PROFILE = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]{0,63})?")


def unfit_for_job(certificates: t.Sequence[t.Any], default_key_type: str) -> list[t.Any]:
    """The entries of the host job's certificate list that it cannot take: a name that is no
    file name (letters, digits, ``_.-``), no list of domains or an empty one, an unknown key
    type (``default_key_type`` when unset), a malformed profile. In one pass: an ``assert``
    looped over 10,000 certificates took 814 s of a ``site`` run."""
    unfit = []
    for cert in certificates:
        if not isinstance(cert, dict):
            unfit.append(cert)
            continue
        name, domains = cert.get("name"), cert.get("domains")
        key_type = cert.get("key_type", default_key_type)
        profile = cert.get("profile") or ""
        if not (isinstance(name, str) and _JOB_NAME.fullmatch(name) and isinstance(domains, (list, tuple)) and domains
                and key_type in _defaults.KEY_TYPES and isinstance(profile, str) and _PROFILE.fullmatch(profile)):
            unfit.append(cert)
    return unfit


_NODE_DEFAULTS: dict[str, t.Any] = {
    "answered": False, "certificates": None, "served": [], "process": None, "deployed": None, "process_after": None,
}


def as_nodes(fleet: t.Any) -> list[Node]:
    """Plain, complete copies of nodes as ``nodes()`` builds them; ValueError saying what is wrong."""
    fleet = plain(fleet)
    if not isinstance(fleet, list):
        raise ValueError("a list of nodes (the fleet_nodes filter's output) is expected")
    result = []
    for given in fleet:
        if not isinstance(given, dict) or not isinstance(given.get("name"), str):
            raise ValueError(f"each node must be a dictionary with a name, as fleet_nodes makes them, not {given!r}")
        member = {**_NODE_DEFAULTS, **{k: v for k, v in given.items() if v is not None}}
        # Entries read as_json and certificates given as JSON text are still text (node()).
        for key in ("certificates", "served", "deployed"):
            if isinstance(member[key], str):
                decoded = json_list(member[key])
                if decoded is None:
                    raise ValueError(f"node {member['name']}: {key} is a text that is not a JSON list")
                member[key] = decoded
        problem = None if member["certificates"] is None else invalid_certificates(member["certificates"])
        if problem or not isinstance(member["served"], list):
            raise ValueError(f"node {member['name']}: {problem or 'served must be a list'}")
        result.append(member)
    return result
