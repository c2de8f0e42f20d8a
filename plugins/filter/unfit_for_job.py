# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: unfit_for_job
short_description: The certificates the host renewal job cannot take
version_added: 0.2.0
description:
  - Returns the entries of a certificate list that the host renewal job (role C(tlsops.haproxy_acme.renewal_timer))
    cannot take; an empty list when all are fit.
  - An entry is unfit when it is no mapping, its C(name) is not letters, digits, C(_), C(.) and C(-) (it names
    C(<cert dir>/<name>.pem)), its C(domains) is no list or an empty one, its C(key_type) (O(default_key_type) when
    unset) is not one of C(ec256), C(ec384), C(rsa2048), C(rsa3072), C(rsa4096), or its C(profile) is not a
    well-formed ACME profile name.
  - One pass over the list, for any number of certificates; the role's check used to loop an C(assert) over each
    one, which took 814 s for 10,000.
author:
  - tlsops.haproxy_acme contributors (@tlsops)
positional: default_key_type
options:
  _input:
    description: The certificates, each C({name, domains[, key_type][, profile]}).
    type: list
    elements: raw
    required: true
  default_key_type:
    description: The key type of an entry without C(key_type).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Check the certificates
  ansible.builtin.assert:
    that: unfit | length == 0
    fail_msg: "Offending entry: {{ unfit | first }}"
  vars:
    unfit: "{{ renewal_timer_certificates | tlsops.haproxy_acme.unfit_for_job('ec256') }}"
"""

RETURN = r"""
_value:
  description: The unfit entries, as given, in the order of the list.
  type: list
  elements: raw
"""

import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _fleet


def unfit_for_job(certificates: t.Any, default_key_type: str) -> list[t.Any]:
    certificates = _fleet.plain(certificates)
    if not isinstance(certificates, list):
        raise AnsibleFilterError("unfit_for_job: the certificates must be a list of {name, domains}")
    return _fleet.unfit_for_job(certificates, str(default_key_type))


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"unfit_for_job": unfit_for_job}
