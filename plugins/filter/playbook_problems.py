# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: playbook_problems
short_description: What keeps the site or renew playbook from running on a host
version_added: 0.2.0
description:
  - Returns one message per problem with the variables of the C(site) and C(renew) playbooks (the role
    C(tlsops.haproxy_acme.haproxy_acme)), each saying what to set; an empty list when there is none.
  - C(haproxy_acme_certificates) must name at least one certificate, with unique names; the terms of service
    must be agreed; a fleet needs an account key path or content on the controller.
  - One task for all the checks, since a task costs each host of a play a worker process, skipped or not.
author:
  - tlsops.haproxy_acme contributors (@tlsops)
positional: terms_agreed, topology, account_key_content, account_key_path, directory
options:
  _input:
    description: C(haproxy_acme_certificates).
    type: raw
    required: true
  terms_agreed:
    description: C(haproxy_acme_terms_agreed).
    type: raw
    required: true
  topology:
    description: C(haproxy_acme_topology), V(standalone) or V(fleet).
    type: str
    required: true
  account_key_content:
    description: C(haproxy_acme_account_key_content).
    type: str
    required: true
  account_key_path:
    description: C(haproxy_acme_account_key_path).
    type: str
    required: true
  directory:
    description: C(haproxy_acme_directory), named in the message about the terms.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Check the playbook variables
  ansible.builtin.assert:
    that: problems | length == 0
    fail_msg: "{{ problems | join(' ') }}"
    quiet: true
  vars:
    problems: >-
      {{ haproxy_acme_certificates | tlsops.haproxy_acme.playbook_problems(
           haproxy_acme_terms_agreed, haproxy_acme_topology, haproxy_acme_account_key_content,
           haproxy_acme_account_key_path, haproxy_acme_directory) }}
"""

RETURN = r"""
_value:
  description: The problems, in the order above, each a sentence that says what to set.
  type: list
  elements: str
"""

import typing as t

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _fleet


def playbook_problems(certificates: t.Any, terms_agreed: t.Any, topology: str,  # noqa: PLR0917 - Jinja passes them so
                      account_key_content: t.Any, account_key_path: t.Any, directory: t.Any) -> list[str]:
    return _fleet.playbook_problems(_fleet.plain(certificates), terms_agreed=_fleet.plain(terms_agreed),
                                    topology=str(topology), account_key_content=account_key_content,
                                    account_key_path=account_key_path, directory=directory)


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"playbook_problems": playbook_problems}
