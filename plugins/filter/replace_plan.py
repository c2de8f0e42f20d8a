# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: replace_plan
short_description: What the replace playbook does for certificates whose key leaked, from what the nodes serve
version_added: 0.2.0
description:
  - Decides, per certificate named, where to keep the compromised copy from, whether to order a replacement,
    which node hands over a replacement already served, and whether the compromised certificate may be revoked
    (docs/incident-response.md).
  - A replacement is ordered only while no node that answered serves a copy other than the compromised one;
    after that, a rerun pushes the copy already served instead of ordering again.
  - The compromised certificate may be revoked only when every node that asks for it answered and serves the
    same replacement; B(blocking) names each node that keeps it from being revoked.
author:
  - tlsops.haproxy_acme contributors (@tlsops)
positional: names, cert_dir, compromised
options:
  _input:
    description:
      - The nodes, as P(tlsops.haproxy_acme.fleet_nodes#filter) returns them (with
        O(tlsops.haproxy_acme.fleet_nodes#filter:certificates) and O(tlsops.haproxy_acme.fleet_nodes#filter:served)).
    type: list
    elements: dict
    required: true
  names:
    description: The names of the certificates to replace (entries of C(haproxy_acme_certificates)).
    type: list
    elements: str
    required: true
  cert_dir:
    description: HAProxy's certificate directory on the nodes; certificate C(name) is served as C(<cert_dir>/<name>.pem).
    type: str
    required: true
  compromised:
    description: The serial of the compromised copy kept aside, per certificate name; a name missing here has no copy kept yet.
    type: dict
    default: {}
  confirmed:
    description:
      - The operator's confirmation of the revocation - V(true) (C(haproxy_acme_revoke_confirmed)), or the answer
        typed at the prompt, which confirms when it is C(yes). Anything else leaves RV(_value.revoke) false.
    type: raw
    default: false
"""

EXAMPLES = r"""
- name: Plan the replacement
  ansible.builtin.set_fact:
    plan: >-
      {{ ansible_play_hosts_all | tlsops.haproxy_acme.fleet_nodes(hostvars, certificates='wanted', served='served')
         | tlsops.haproxy_acme.replace_plan(['shop.example.org'], '/etc/haproxy/certs', {'shop.example.org': '0A1B'}) }}
  run_once: true
"""

RETURN = r"""
_value:
  description: The plan.
  type: dict
  contains:
    certificates:
      description:
        - Per certificate, C(name), C(compromised) (the serial kept aside, or null), C(keep_from) (a node serving the
          compromised copy), C(seed) (a node serving a replacement, or null), C(force) (order a replacement now),
          C(new_serial) (the replacement all nodes serve, or null) and C(blocking).
      type: list
      elements: dict
    nodes:
      description: Per node and certificate, C(state) (V(new), V(compromised), V(missing) or V(down)) and C(serial).
      type: dict
    blocking:
      description: Why the compromised certificates may not be revoked yet, each naming the certificate and the node.
      type: list
      elements: str
    revocable:
      description: Whether nothing blocks the revocation.
      type: bool
    confirmed:
      description: Whether the operator confirmed the revocation (O(confirmed)).
      type: bool
    revoke:
      description: Whether to revoke now - nothing blocks it and the operator confirmed.
      type: bool
"""

import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _fleet, _incident


def replace_plan(nodes: t.Any, names: t.Any, cert_dir: str, compromised: t.Any = None,
                 confirmed: t.Any = False) -> dict[str, t.Any]:
    if isinstance(names, str) or not isinstance(names, t.Iterable):
        raise AnsibleFilterError("replace_plan expects a list of certificate names")
    if compromised is not None and not isinstance(compromised, t.Mapping):
        raise AnsibleFilterError("replace_plan expects the compromised serials as a dict of name: serial")
    try:
        fleet = _fleet.as_nodes(nodes)
    except ValueError as exc:
        raise AnsibleFilterError(f"replace_plan: {exc}") from None
    return _incident.plan(fleet, [str(n) for n in names], str(cert_dir),
                          _fleet.plain(compromised) if compromised else None, confirmed)


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"replace_plan": replace_plan}
