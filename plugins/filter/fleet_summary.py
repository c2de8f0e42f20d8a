# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet_summary
short_description: What a fleet run did, as the renew playbook shows and keeps it
version_added: 0.2.0
description:
  - Summarises a fleet run from the result of the order step and what the nodes reported (docs/fleet.md).
  - The C(renew) playbook prints it and keeps it as the job's artifact C(haproxy_acme_fleet) (C(set_stats)).
author:
  - tlsops.haproxy_acme contributors (@tlsops)
positional: nodes, play_hosts_all
options:
  _input:
    description: The registered result of M(tlsops.haproxy_acme.acme_stateless_order); anything else counts as no order.
    type: raw
    required: true
  nodes:
    description:
      - The nodes still in the play (C(ansible_play_hosts)), as P(tlsops.haproxy_acme.fleet_nodes#filter) returns
        them with its C(served), C(deployed) and C(served_after) options.
    type: list
    elements: dict
    required: true
  play_hosts_all:
    description: Every host of the play (C(ansible_play_hosts_all)); those not in O(nodes) did not answer.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Summarise the run
  ansible.builtin.set_fact:
    summary: "{{ issued | tlsops.haproxy_acme.fleet_summary(nodes, ansible_play_hosts_all) }}"
  vars:
    nodes: >-
      {{ ansible_play_hosts | tlsops.haproxy_acme.fleet_nodes(hostvars, served='served', deployed='deployed',
                                                               served_after='served_after') }}
  run_once: true
"""

RETURN = r"""
_value:
  description: The summary.
  type: dict
  contains:
    orders:
      description: Certificates ordered from the CA in this run (action C(issued) or C(renewed)).
      type: int
    certificates:
      description: Per certificate, C({name, action, reason, serial}) of the order step; what it said about the
        file modes of its scratch copies is left out of C(reason).
      type: list
      elements: dict
    updated:
      description: Per node, the certificates it did not serve yet (drift, or a new certificate) and now serves.
      type: dict
    not_answering:
      description: Hosts of the play that dropped out (unreachable or failed); they converge on the next run.
      type: list
      elements: str
    worker_pids:
      description: Per node, HAProxy's worker PID before and after the push (null when unknown, or after when the node was sent nothing and not read again).
      type: dict
"""

import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _fleet


def fleet_summary(issued: t.Any, nodes: t.Any, play_hosts_all: t.Any) -> dict[str, t.Any]:
    try:
        fleet = _fleet.as_nodes(nodes)
    except ValueError as exc:
        raise AnsibleFilterError(f"fleet_summary: {exc}") from None
    if isinstance(play_hosts_all, (str, bytes)) or not isinstance(play_hosts_all, t.Iterable):
        raise AnsibleFilterError("fleet_summary: play_hosts_all must be a list of hosts")
    return _fleet.summary(_fleet.plain(issued), fleet, [str(h) for h in play_hosts_all])


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"fleet_summary": fleet_summary}
