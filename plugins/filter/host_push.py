# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: host_push
short_description: The bundles a host that orders for itself serves, for haproxy_runtime_cert
version_added: 0.2.0
description:
  - Builds O(tlsops.haproxy_acme.haproxy_runtime_cert#module:certificates) on a standalone host from the
    certificates it asks for, each deployed from the bundle C(<cert_dir>/<name>.pem) that
    M(tlsops.haproxy_acme.acme_stateless_order) keeps there.
  - One expression for the whole list, whatever its length; a C(set_fact) loop that appends one entry per
    certificate costs time in proportion to the square of their number.
author:
  - tlsops.haproxy_acme contributors (@tlsops)
positional: cert_dir
options:
  _input:
    description: The certificates the host asks for, each C({name, domains}).
    type: list
    elements: dict
    required: true
  cert_dir:
    description: HAProxy's certificate directory on the host.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Make HAProxy serve the certificates the host ordered
  tlsops.haproxy_acme.haproxy_runtime_cert:
    certificates: "{{ haproxy_acme_certificates | tlsops.haproxy_acme.host_push('/etc/haproxy/certs') }}"
    write_file: false
"""

RETURN = r"""
_value:
  description: C({path, pem_src, expected_domains}) per certificate, in the order asked; C(path) and
    C(pem_src) are both C(<cert_dir>/<name>.pem).
  type: list
  elements: dict
"""

import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _fleet


def host_push(certificates: t.Any, cert_dir: str) -> list[dict[str, t.Any]]:
    certificates = _fleet.plain(certificates)
    problem = _fleet.invalid_certificates(certificates)
    if problem:
        raise AnsibleFilterError(f"host_push: {problem}")
    if not isinstance(cert_dir, str) or not cert_dir:
        raise AnsibleFilterError("host_push: cert_dir must be the certificate directory's path")
    return _fleet.host_push(certificates, cert_dir)


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"host_push": host_push}
