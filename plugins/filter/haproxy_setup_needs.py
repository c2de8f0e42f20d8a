# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: haproxy_setup_needs
short_description: Which set-up steps a host still needs, from the haproxy role's probe
version_added: 0.2.0
description:
  - The P(tlsops.haproxy_acme.haproxy#role) role reads in one command what a host has (HAProxy's version line, each
    package's dpkg status, the service's C(systemctl is-enabled) and C(is-active)). This filter decides from that
    output whether the package step and the service step must run.
  - The package step runs unless every package is C(installed) and HAProxy answers C(-v), when O(package_state) is
    V(present); always for another state, and when the host has no dpkg. The service step runs unless systemd says
    the service is active and enabled (or disabled, with O(service_enabled=false)).
author:
  - tlsops.haproxy_acme contributors (@tlsops)
options:
  _input:
    description: The probe command's standard output.
    type: str
    required: true
  packages:
    description: The packages the role installs.
    type: list
    elements: str
    required: true
  manage_package:
    description: Whether the role manages the package (C(haproxy_manage_package)).
    type: bool
    default: true
  package_state:
    description: The state asked of the packages (C(haproxy_package_state)).
    type: str
    default: present
  manage_service:
    description: Whether the role manages the service (C(haproxy_manage_service)).
    type: bool
    default: true
  service_enabled:
    description: Whether the service should start at boot (C(haproxy_service_enabled)).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Install HAProxy
  ansible.builtin.package:
    name: [haproxy, openssl]
  when: (probe.stdout | tlsops.haproxy_acme.haproxy_setup_needs(packages=['haproxy', 'openssl'])).install
"""

RETURN = r"""
_value:
  description: What the host needs.
  type: dict
  contains:
    install:
      description: Whether the package step must run.
      type: bool
    service:
      description: Whether the service step must run.
      type: bool
    version:
      description: HAProxy's version (V(2.6.12)), null when C(haproxy -v) gave none.
      type: str
"""

import typing as t

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _fleet
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _probe as probe


def haproxy_setup_needs(
    output: t.Any,
    packages: t.Any,
    *,
    manage_package: bool = True,
    package_state: str = "present",
    manage_service: bool = True,
    service_enabled: bool = True,
) -> dict[str, t.Any]:
    packages = _fleet.plain(packages)
    if not isinstance(output, str) or not isinstance(packages, list):
        raise AnsibleFilterError("haproxy_setup_needs: give the probe's stdout and a list of packages")
    return probe.needs(probe.parse(output), [str(p) for p in packages], manage_package=boolean(manage_package),
                       package_state=str(package_state), manage_service=boolean(manage_service),
                       service_enabled=boolean(service_enabled))


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"haproxy_setup_needs": haproxy_setup_needs}
