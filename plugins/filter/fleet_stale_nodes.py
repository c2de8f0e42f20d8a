# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet_stale_nodes
short_description: For every node at once, the bundles it must be sent
version_added: 0.2.0
description:
  - What P(tlsops.haproxy_acme.fleet_stale#filter) says of one node, for every node that answered, in one
    computation on the controller. Of the bundle files on the controller (seeds from the nodes, or what
    was just ordered), those of the certificates a node asks for whose serial, as the order step ended
    with it, the node does not serve (status C(Used)) already. A certificate whose serial is not known on
    either side is sent.
  - The C(renew) playbook of a fleet runs it once, then calls only the nodes it names (docs/fleet.md). A
    filter over each node's variables would read them once per node.
author:
  - tlsops.haproxy_acme contributors (@tlsops)
positional: cert_dir, bundle_files, issued
options:
  _input:
    description: The nodes, as P(tlsops.haproxy_acme.fleet_nodes#filter) makes them from the read before the order.
    type: list
    elements: dict
    required: true
  cert_dir:
    description: HAProxy's certificate directory on the nodes.
    type: str
    required: true
  bundle_files:
    description: The bundle files on the controller; the bundle of certificate C(name) is the file named C(<name>.pem).
    type: list
    elements: str
    required: true
  issued:
    description: RV(tlsops.haproxy_acme.acme_stateless_order#module:certificates) of the order step.
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Decide once which node must be sent which bundles
  ansible.builtin.set_fact:
    to_send: >-
      {{ ansible_play_hosts | tlsops.haproxy_acme.fleet_nodes(hostvars, certificates='wanted', served='served')
         | tlsops.haproxy_acme.fleet_stale_nodes('/etc/haproxy/certs', query('ansible.builtin.fileglob', scratch ~ '/*.pem'),
                                                 issued.certificates | default([])) }}
  run_once: true

- name: Send each node only what it does not serve yet
  tlsops.haproxy_acme.haproxy_runtime_cert:
    certificates: "{{ wanted | tlsops.haproxy_acme.fleet_push('/etc/haproxy/certs', bundles) }}"
  when: inventory_hostname in to_send
  vars:
    bundles: "{{ dict(to_send[inventory_hostname] | zip(query('ansible.builtin.file', *to_send[inventory_hostname], rstrip=false))) }}"
"""

RETURN = r"""
_value:
  description: Node name to the bundle files it must be sent, in the order its certificates are asked for;
    only nodes with at least one.
  type: dict
"""

import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _fleet


def fleet_stale_nodes(nodes: t.Any, cert_dir: str, bundle_files: t.Any, issued: t.Any) -> dict[str, list[str]]:
    bundle_files = _fleet.plain(bundle_files)
    try:
        fleet = _fleet.as_nodes(nodes)
    except ValueError as exc:
        raise AnsibleFilterError(f"fleet_stale_nodes: {exc}") from None
    if not isinstance(bundle_files, list):
        raise AnsibleFilterError("fleet_stale_nodes: bundle_files must be a list of file paths")
    return _fleet.stale_nodes(fleet, str(cert_dir), [str(f) for f in bundle_files], _fleet.plain(issued))


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"fleet_stale_nodes": fleet_stale_nodes}
