# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: renewal_due
short_description: Whether a served certificate is due for renewal by its dates
version_added: 0.2.0
description:
  - Applies the time part of the renewal rule of M(tlsops.haproxy_acme.acme_stateless_order) to a
    certificate described by its validity dates, for example an entry of
    RV(tlsops.haproxy_acme.haproxy_runtime_cert_info#module:certificates).
  - An explicit O(remaining_days) below the certificate's lifetime renews when fewer days are left.
    Otherwise it is due with less than a third of its lifetime left (half of it for lifetimes under 10 days).
  - The CA's renewal window (ARI) is not consulted, since that needs the CA.
author:
  - tlsops.haproxy_acme contributors (@tlsops)
positional: remaining_days
options:
  _input:
    description: A dictionary with C(not_before) and C(not_after) (ISO 8601 / RFC 3339, UTC).
    type: dict
    required: true
  remaining_days:
    description: The explicit threshold in days; empty or null for the lifetime rule.
    type: raw
"""

EXAMPLES = r"""
- name: Whether each certificate HAProxy serves is due
  ansible.builtin.debug:
    msg: "{{ item.path }}: {{ item | tlsops.haproxy_acme.renewal_due }}"
  loop: "{{ served.certificates }}"

- name: The same with an explicit threshold of 20 days
  ansible.builtin.debug:
    msg: "{{ served.certificates[0] | tlsops.haproxy_acme.renewal_due(20) }}"
"""

RETURN = r"""
_value:
  description: V(true) when the certificate is due, V(false) when not, or when its dates are unknown.
  type: bool
"""

import datetime as dt
import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._fleet import due


def renewal_due(served: t.Any, remaining_days: t.Any = None) -> bool:
    if not isinstance(served, dict):
        raise AnsibleFilterError("renewal_due expects a dictionary with not_before and not_after")
    return due(served, remaining_days, dt.datetime.now(dt.timezone.utc))


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"renewal_due": renewal_due}
