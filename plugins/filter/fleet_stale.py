# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet_stale
short_description: The bundles one node must be sent, leaving out those it serves already
version_added: 0.2.0
description:
  - Of the bundle files on the controller (seeds from the nodes, or what was just ordered), those of the
    certificates a node asks for whose serial, as the order step ended with it, the node does not serve
    (status C(Used)) already. A certificate whose serial is not known on either side is sent.
  - The C(renew) playbook of a fleet reads and sends only these (docs/fleet.md), so that a run with
    nothing new sends nothing.
author:
  - tlsops.haproxy_acme contributors (@tlsops)
positional: cert_dir, bundle_files, served, issued
options:
  _input:
    description: The certificates the node asks for, each C({name, domains}).
    type: list
    elements: dict
    required: true
  cert_dir:
    description: HAProxy's certificate directory on the node.
    type: str
    required: true
  bundle_files:
    description: The bundle files on the controller; the bundle of certificate C(name) is the file named C(<name>.pem).
    type: list
    elements: str
    required: true
  served:
    description: The node's registered result of M(tlsops.haproxy_acme.haproxy_runtime_cert_info).
    type: dict
    required: true
  issued:
    description: RV(tlsops.haproxy_acme.acme_stateless_order#module:certificates) of the order step.
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Send the node only what it does not serve yet
  tlsops.haproxy_acme.haproxy_runtime_cert:
    certificates: "{{ wanted | tlsops.haproxy_acme.fleet_push('/etc/haproxy/certs', bundles) }}"
  when: files | length > 0
  vars:
    files: >-
      {{ wanted | tlsops.haproxy_acme.fleet_stale('/etc/haproxy/certs', query('ansible.builtin.fileglob', scratch ~ '/*.pem'),
                                                  served, issued.certificates | default([])) }}
    bundles: "{{ dict(files | zip(query('ansible.builtin.file', *files, rstrip=false))) }}"
"""

RETURN = r"""
_value:
  description: The bundle files to send, in the order the certificates are asked for.
  type: list
  elements: str
"""

import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _fleet


def fleet_stale(certificates: t.Any, cert_dir: str, bundle_files: t.Any, served: t.Any, issued: t.Any) -> list[str]:
    certificates, bundle_files = _fleet.plain(certificates), _fleet.plain(bundle_files)
    problem = _fleet.invalid_certificates(certificates)
    if problem:
        raise AnsibleFilterError(f"fleet_stale: {problem}")
    if not isinstance(bundle_files, list):
        raise AnsibleFilterError("fleet_stale: bundle_files must be a list of file paths")
    return _fleet.stale(certificates, str(cert_dir), [str(f) for f in bundle_files], _fleet.result_copy(served),
                        _fleet.plain(issued))


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"fleet_stale": fleet_stale}
