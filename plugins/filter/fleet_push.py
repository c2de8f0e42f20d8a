# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet_push
short_description: The bundles one node must serve, for haproxy_runtime_cert
version_added: 0.2.0
description:
  - Builds O(tlsops.haproxy_acme.haproxy_runtime_cert#module:certificates) for one node from the certificates
    it asks for and the bundles the controller holds (seeds from the nodes, or what was just ordered).
  - A certificate without a bundle (its order failed and no node served it) is left out; the order step
    reports it.
author:
  - tlsops.haproxy_acme contributors (@tlsops)
positional: cert_dir, bundles
options:
  _input:
    description: The certificates the node asks for, each C({name, domains}), or the JSON text of that list
      (C(to_json)), which Ansible hands over far faster than a list of hundreds of entries.
    type: raw
    required: true
  cert_dir:
    description: HAProxy's certificate directory on the node.
    type: str
    required: true
  bundles:
    description: The PEM bundles on the controller, file path to content; the bundle of certificate C(name)
      is the file named C(<name>.pem).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Make the node serve the bundles in the scratch directory
  tlsops.haproxy_acme.haproxy_runtime_cert:
    certificates: "{{ wanted | tlsops.haproxy_acme.fleet_push('/etc/haproxy/certs', bundles) }}"
  vars:
    files: "{{ query('ansible.builtin.fileglob', scratch ~ '/*.pem') }}"
    bundles: "{{ dict(files | zip(query('ansible.builtin.file', *files, rstrip=false))) }}"
"""

RETURN = r"""
_value:
  description: C({path, pem_content, expected_domains}) per certificate that has a bundle, in the order asked.
  type: list
  elements: dict
"""

import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _fleet


def fleet_push(certificates: t.Any, cert_dir: str, bundles: t.Any) -> list[dict[str, t.Any]]:
    certificates, bundles = _fleet.plain(certificates), _fleet.plain(bundles)
    if isinstance(certificates, str):
        certificates = _fleet.json_list(certificates)
    problem = _fleet.invalid_certificates(certificates)
    if problem:
        raise AnsibleFilterError(f"fleet_push: {problem}")
    if not isinstance(bundles, dict):
        raise AnsibleFilterError("fleet_push: bundles must map file paths to PEM text")
    return _fleet.push(certificates, str(cert_dir), bundles)


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"fleet_push": fleet_push}
