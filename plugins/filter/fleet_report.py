# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet_report
short_description: The certificate x node report, from what every node serves
version_added: 0.2.0
description:
  - Builds the report of the C(report) playbook, described in docs/fleet.md. It has one row per certificate
    and node, per node its state, drift and HAProxy process, and counts of nodes per state.
  - A node should serve the certificates it asks for; when it asks for none (or they are unknown), every
    certificate any node serves from O(cert_dir).
  - In a fleet, per certificate the reference is the newest copy any node serves (latest notAfter, status C(Used));
    standalone hosts each order their own copy, so C(older) does not apply to them.
  - "A row's state is one of: C(in sync) (it serves the reference copy); C(due) (the same, due for renewal by
    its dates, the rule of P(tlsops.haproxy_acme.renewal_due#filter)); C(expired) (the same, expired); C(older)
    (drift: it serves another copy); C(missing) (drift: it does not serve the certificate); C(unreachable) (the
    node did not answer, its state is unknown)."
  - Rows come most urgent first, by days left (ascending; a certificate a node does not serve first, a node
    that did not answer last), then drift first, then certificate and node name.
  - A node's state is the worst of its rows (C(expired), C(missing), C(older), C(due), C(in sync)); the counts
    per state count nodes, each node once in every state one of its rows has.
author:
  - tlsops.haproxy_acme contributors (@tlsops)
positional: cert_dir
options:
  _input:
    description: Every node of the play (C(ansible_play_hosts_all)), as P(tlsops.haproxy_acme.fleet_nodes#filter)
      returns them with its C(certificates) and C(served) options.
    type: list
    elements: dict
    required: true
  cert_dir:
    description: HAProxy's certificate directory on the nodes.
    type: str
    required: true
  remaining_days:
    description: The explicit renewal threshold in days (C(haproxy_acme_remaining_days)); empty or null for the lifetime rule.
    type: raw
  topology:
    description: V(fleet) (one copy of each certificate for all nodes) or V(standalone) (each host its own).
    type: str
    default: fleet
    choices: [fleet, standalone]
  now:
    description: The time to judge by, RFC 3339 (UTC); default now.
    type: str
"""

EXAMPLES = r"""
- name: Read what each node serves
  tlsops.haproxy_acme.haproxy_runtime_cert_info:
  register: served

- name: Build the report
  ansible.builtin.set_fact:
    report: >-
      {{ ansible_play_hosts_all | tlsops.haproxy_acme.fleet_nodes(hostvars, certificates='wanted', served='served')
         | tlsops.haproxy_acme.fleet_report('/etc/haproxy/certs', remaining_days=30) }}
  run_once: true

- name: Name the certificates that drift
  ansible.builtin.debug:
    msg: "Drift: {{ report.drift | join(', ') or 'none' }}"
"""

RETURN = r"""
_value:
  description: The report.
  type: dict
  contains:
    generated:
      description: When, as C(YYYY-MM-DD HH:MM:SS UTC).
      type: str
    topology:
      description: O(topology).
      type: str
    renewal_rule:
      description: The renewal rule in words.
      type: str
    states:
      description: The states, in the order to list them.
      type: list
      elements: str
    counts:
      description: C(nodes), C(answered), C(rows), and C(states) (per state, the nodes with a row in it).
      type: dict
    drift:
      description: The certificates some node drifts from, in the order of the certificates.
      type: list
      elements: str
    unreachable:
      description: The nodes that did not answer.
      type: list
      elements: str
    nodes:
      description: Per node, in the order of O(_input), C({name, answered, state, states, certificates, drift,
        haproxy_version, worker_pid}); C(drift) names its certificates in state C(older) or C(missing).
      type: list
      elements: dict
    rows:
      description: Per certificate and node, most urgent first, C({certificate, path, node, state, drift,
        serial, reference_serial, not_after, days_left, issuer, domains}); C(drift) is null when the node did
        not answer, C(reference_serial) null on standalone hosts.
      type: list
      elements: dict
"""

import datetime as dt
import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _fleet
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._time import parse_time


def fleet_report(nodes: t.Any, cert_dir: str, remaining_days: t.Any = None, topology: str = "fleet",
                 now: t.Any = None) -> dict[str, t.Any]:
    try:
        fleet = _fleet.as_nodes(nodes)
        _fleet.threshold(remaining_days)
    except ValueError as exc:
        raise AnsibleFilterError(f"fleet_report: {exc}") from None
    if topology not in ("fleet", "standalone"):
        raise AnsibleFilterError(f"fleet_report: topology must be fleet or standalone, not {topology!r}")
    when = None if now in (None, "") else now if isinstance(now, dt.datetime) else parse_time(now)
    if now not in (None, "") and when is None:
        raise AnsibleFilterError(f"fleet_report: now must be an RFC 3339 time, not {now!r}")
    return _fleet.report(fleet, str(cert_dir), remaining_days, topology == "fleet", when)


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"fleet_report": fleet_report}
