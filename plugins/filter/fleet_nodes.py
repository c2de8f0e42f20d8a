# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet_nodes
short_description: What each node of a play asks for and reported, as plain data
version_added: 0.2.0
description:
  - Turns the per-host variables of a play into one dictionary per node, the input of
    P(tlsops.haproxy_acme.fleet_plan#filter), P(tlsops.haproxy_acme.fleet_summary#filter) and
    P(tlsops.haproxy_acme.fleet_report#filter).
  - Each option names the host variable to read; a variable a host does not have reads as null.
  - A node V(answered) when the variable named by O(served) holds a result of
    M(tlsops.haproxy_acme.haproxy_runtime_cert_info) that did not fail, so a node that was unreachable,
    failed or dropped out before the read did not.
author:
  - tlsops.haproxy_acme contributors (@tlsops)
positional: hostvars
options:
  _input:
    description: The inventory hosts, for example C(ansible_play_hosts_all).
    type: list
    elements: str
    required: true
  hostvars:
    description: The variables of every host; pass C(hostvars).
    type: dict
    required: true
  certificates:
    description:
      - The variable holding the list of certificates the host asks for, each C({name, domains[, key_type][, profile]}),
        or the JSON text of that list (C(to_json)), which is read far faster from many hosts; RV(_value[].certificates)
        is then that text, which the filters that take these nodes decode.
    type: str
  served:
    description:
      - The variable holding the registered result of M(tlsops.haproxy_acme.haproxy_runtime_cert_info).
      - Like O(deployed) and O(served_after), a list of variables names a result by the first of them
        that holds one that was not skipped (a read after a push that skipped a node falls back to the read before).
    type: raw
  deployed:
    description: The variable holding the registered result of M(tlsops.haproxy_acme.haproxy_runtime_cert).
    type: raw
  served_after:
    description: The variable holding a second result of M(tlsops.haproxy_acme.haproxy_runtime_cert_info), read after a push.
    type: raw
"""

EXAMPLES = r"""
- name: Read what each node serves
  tlsops.haproxy_acme.haproxy_runtime_cert_info:
  register: served

- name: Every node of the play, answering or not
  ansible.builtin.set_fact:
    nodes: "{{ ansible_play_hosts_all | tlsops.haproxy_acme.fleet_nodes(hostvars, certificates='wanted', served='served') }}"
  run_once: true
"""

RETURN = r"""
_value:
  description: One dictionary per host of O(_input), in that order.
  type: list
  elements: dict
  contains:
    name:
      description: The inventory host.
      type: str
    answered:
      description: Whether O(served) holds a successful read.
      type: bool
    certificates:
      description: The value of O(certificates) when it is a list or a text (its JSON, decoded by the filters
        that take these nodes), else null.
      type: raw
    served:
      description:
        - RV(tlsops.haproxy_acme.haproxy_runtime_cert_info#module:certificates) of that read; empty when the node did not answer.
        - Read with O(tlsops.haproxy_acme.haproxy_runtime_cert_info#module:as_json), the JSON text of
          RV(tlsops.haproxy_acme.haproxy_runtime_cert_info#module:certificates_json) as it is. The filters that take
          these nodes decode it; between two filters Ansible wraps every list and dictionary in a lazy
          container, so that hundreds of entries from each node cost seconds, and one string per node nothing.
      type: raw
    process:
      description: RV(tlsops.haproxy_acme.haproxy_runtime_cert_info#module:process) of that read, or null.
      type: dict
    deployed:
      description: RV(tlsops.haproxy_acme.haproxy_runtime_cert#module:certificates) of O(deployed), or null; its
        JSON text when that push used O(tlsops.haproxy_acme.haproxy_runtime_cert#module:as_json), as for RV(_value[].served).
      type: raw
    process_after:
      description: RV(tlsops.haproxy_acme.haproxy_runtime_cert_info#module:process) of O(served_after), or null.
      type: dict
"""

import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _fleet


def fleet_nodes(hosts: t.Any, hostvars: t.Any, *, certificates: str | None = None, served: t.Any = None,
                deployed: t.Any = None, served_after: t.Any = None) -> list[dict[str, t.Any]]:
    if isinstance(hosts, (str, bytes)) or not isinstance(hosts, t.Iterable):
        raise AnsibleFilterError("fleet_nodes expects a list of hosts, such as ansible_play_hosts_all")
    if not isinstance(hostvars, t.Mapping):
        raise AnsibleFilterError("fleet_nodes expects hostvars as its argument")
    return _fleet.nodes(hosts, hostvars, certificates=certificates, served=served, deployed=deployed,
                        served_after=served_after)


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"fleet_nodes": fleet_nodes}
