# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet_plan
short_description: What a fleet orders, the conflicts between its nodes, and the newest copy of each certificate
version_added: 0.2.0
description:
  - Decides, from what the nodes ask for and serve, what the C(renew) playbook of a fleet works on (docs/fleet.md).
  - Only nodes that answered count; a certificate asked for only by a node that did not answer waits for it.
  - B(certificates) is every certificate the nodes ask for, once, as the first node (in play order) defines it.
  - B(conflicts) are the names that nodes define differently. A certificate is its domains (in any
    order and case), its key type (C(ec256) when not given) and its C(profile) (none when not given);
    a fleet orders each name once, so each variant needs a name of its own.
  - B(seeds) name, per certificate, a node that serves its newest valid copy, to seed the order step
    with. Newest is the latest notAfter among copies served (status C(Used)) that have not expired, on the
    nodes that ask for it. When several nodes serve that same copy, the certificates are spread over them
    (the n-th certificate goes to the (n mod k)-th of its k holders) so that the nodes hand their bundles
    over in parallel. A certificate no node serves gets no seed, and is ordered.
  - A seed is copied to the controller (B(copy)) only when some answering node that asks for the certificate
    does not serve the serial of the seed node's file, or that node reported nothing of its file (no
    C(bundle_facts) in its M(tlsops.haproxy_acme.haproxy_runtime_cert_info) result). Otherwise the certificate
    in B(certificates) carries those C(bundle_facts), and
    M(tlsops.haproxy_acme.acme_stateless_order) decides from them without the file.
author:
  - tlsops.haproxy_acme contributors (@tlsops)
positional: cert_dir
options:
  _input:
    description: The nodes, as P(tlsops.haproxy_acme.fleet_nodes#filter) returns them.
    type: list
    elements: dict
    required: true
  cert_dir:
    description: HAProxy's certificate directory on the nodes; certificate C(name) is served as C(<cert_dir>/<name>.pem).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Plan the fleet's run
  ansible.builtin.set_fact:
    plan: >-
      {{ ansible_play_hosts | tlsops.haproxy_acme.fleet_nodes(hostvars, certificates='wanted', served='served')
         | tlsops.haproxy_acme.fleet_plan('/etc/haproxy/certs') }}
  run_once: true

- name: Refuse names defined differently on different nodes
  ansible.builtin.assert:
    that: plan.conflicts | length == 0
    fail_msg: "{{ plan.conflicts | map(attribute='reason') | join('; ') }}"
"""

RETURN = r"""
_value:
  description: The plan.
  type: dict
  contains:
    certificates:
      description:
        - Every certificate asked for, once, as given (C({name, domains[, key_type][, profile]})), with
          C(bundle_facts) when its seed is not copied; the input of
          M(tlsops.haproxy_acme.acme_stateless_order)'s O(tlsops.haproxy_acme.acme_stateless_order#module:certificates).
      type: list
      elements: dict
    conflicts:
      description: One entry per name defined differently, with C(name), C(nodes), C(differ) (which of
        C(domains), C(key_type), C(profile) differ) and C(reason) (the variants and who asks for each).
      type: list
      elements: dict
    seeds:
      description:
        - Per certificate that some node serves valid, C({name, host, serial, not_after, facts, copy}).
        - C(facts) is what C(host) reported of its file (or null); C(copy) whether the file must come to the controller.
      type: list
      elements: dict
    seed_files:
      description: Node name to the bundle files (C(<name>.pem)) it hands over, the seeds with C(copy) true;
        only nodes with at least one.
      type: dict
"""

import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _fleet


def fleet_plan(nodes: t.Any, cert_dir: str) -> dict[str, t.Any]:
    try:
        fleet = _fleet.as_nodes(nodes)
    except ValueError as exc:
        raise AnsibleFilterError(f"fleet_plan: {exc}") from None
    return _fleet.plan(fleet, str(cert_dir))


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"fleet_plan": fleet_plan}
