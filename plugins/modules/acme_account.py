#!/usr/bin/python
# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: acme_account
short_description: Create, look up, update or deactivate an ACME account
version_added: 0.1.0
description:
  - Ensures an account exists at an ACME CA (RFC 8555 section 7.3) for an account key, with
    the contact asked, or deactivates it.
  - Generates the account key when O(account_key_path) does not exist yet (mode C(0600)).
  - Rolls the account over to another key (RFC 8555 section 7.3.5) with O(new_account_key_path) or
    O(new_account_key_content). The account keeps its URL, its orders and its certificates, and from
    then on only the new key signs for it. For an account key that may have leaked.
  - Returns the account URL and the key's thumbprint (RFC 7638), which is the value HAProxy answers
    HTTP-01 challenges with (the P(tlsops.haproxy_acme.haproxy#role) role's thumbprint map;
    M(tlsops.haproxy_acme.haproxy_acme_thumbprint) changes it at run time).
author:
  - tlsops.haproxy_acme contributors (@tlsops)
requirements:
  - cryptography >= 38 (on the host that runs the module)
  - requests >= 2.28
extends_documentation_fragment:
  - tlsops.haproxy_acme.acme
  - tlsops.haproxy_acme.attributes
  - tlsops.haproxy_acme.attributes.actiongroup_acme
options:
  state:
    description:
      - V(present) creates the account if needed (this needs O(terms_agreed=true) at CAs with terms)
        and sets its contact to O(email) when O(email) is given.
      - V(absent) deactivates the account. Deactivation is final at the CA; the key file is kept.
    type: str
    choices: [present, absent]
    default: present
  account_key_type:
    description:
      - Type of the account key to generate when O(account_key_path) does not exist yet, and of the
        new key when O(new_account_key_path) does not exist yet.
      - An existing key is used as it is, whatever its type.
    type: str
    choices: [ec256, ec384, rsa2048, rsa3072, rsa4096]
    default: ec256
  new_account_key_path:
    description:
      - Roll the account of the account key (O(account_key_path) or O(account_key_content)) over to
        the PEM private key in this file. Only with O(state=present).
      - Generated (of O(account_key_type), mode C(0600), O(owner) and O(group)) when the file does
        not exist yet; the account key itself is never generated during a rollover.
      - Whether the rollover is due is asked of the CA, never of local state. The account is looked
        up with each key (C(onlyReturnExisting)); when the new key finds it and the old one does
        not, the rollover happened already and nothing is sent (RV(rolled_over=false)). So the task
        may run again before the account key file has been replaced by the new key, and after.
      - When the new key is the account key itself (a rollover whose key file has been moved into
        place), nothing is rolled over.
      - A new key that already belongs to another account fails, naming that account (RFC 8555
        section 7.3.5, 409 Conflict).
      - The key files are left where they are; replace the account key with the new key afterwards
        (see the incident response guide in the collection's docs).
    type: path
    version_added: 0.2.0
  new_account_key_content:
    description:
      - The new account key as a PEM string, instead of O(new_account_key_path). Never logged and never returned.
    type: str
    version_added: 0.2.0
  owner:
    description:
      - Owner of the account key file when this module creates it.
    type: str
  group:
    description:
      - Group of the account key file when this module creates it.
    type: str
attributes:
  check_mode:
    support: full
    details:
      - In check mode a missing key file is not written and nothing is created, updated, rolled over or
        deactivated. The account is still looked up (a request that changes nothing at the CA) when the
        key exists, with the new key too for a rollover.
  diff_mode:
    support: none
  idempotent:
    support: full
seealso:
  - module: tlsops.haproxy_acme.acme_stateless_order
  - module: tlsops.haproxy_acme.haproxy_acme_thumbprint
  - module: tlsops.haproxy_acme.acme_revoke
  - name: RFC 8555 section 7.3 (account management)
    description: How ACME accounts are created, found and deactivated.
    link: https://www.rfc-editor.org/rfc/rfc8555#section-7.3
  - name: RFC 8555 section 7.3.5 (account key rollover)
    description: The key change sent for O(new_account_key_path).
    link: https://www.rfc-editor.org/rfc/rfc8555#section-7.3.5
  - name: RFC 7638 (JWK thumbprint)
    description: The thumbprint returned here.
    link: https://www.rfc-editor.org/rfc/rfc7638
"""

EXAMPLES = r"""
- name: Create the account (and its key) at Let's Encrypt
  tlsops.haproxy_acme.acme_account:
    directory: letsencrypt
    account_key_path: /var/lib/acme/account.key
    owner: acme
    email: ops@example.com
    terms_agreed: true
  register: account

- name: Let HAProxy answer challenges with the account's thumbprint
  ansible.builtin.include_role:
    name: tlsops.haproxy_acme.haproxy
  vars:
    haproxy_acme_thumbprint: "{{ account.thumbprint }}"

- name: Roll the account over to a new key (generated when the file does not exist)
  tlsops.haproxy_acme.acme_account:
    directory: letsencrypt
    account_key_path: /var/lib/acme/account/account.key
    new_account_key_path: /var/lib/acme/account/account.key.next
    owner: acme
  register: rollover

- name: Answer challenges with the new thumbprint, without a reload
  tlsops.haproxy_acme.haproxy_acme_thumbprint:
    thumbprint: "{{ rollover.new_thumbprint }}"

- name: Use an acme.sh account key as it is, at ZeroSSL with external account binding
  tlsops.haproxy_acme.acme_account:
    directory: zerossl
    account_key_path: /root/.acme.sh/ca/acme.zerossl.com/v2/DV90/account.key
    terms_agreed: true
    eab_kid: "{{ zerossl_eab_kid }}"
    eab_hmac_key: "{{ zerossl_eab_hmac_key }}"

- name: Deactivate an account for good
  tlsops.haproxy_acme.acme_account:
    directory: letsencrypt
    account_key_content: "{{ old_account_key }}"
    state: absent
"""

RETURN = r"""
account_uri:
  description: The account's URL at the CA (its C(kid)); null when it does not exist (or would be created in check mode).
  returned: success
  type: str
  sample: https://acme-v02.api.letsencrypt.org/acme/acct/123456789
thumbprint:
  description:
    - The RFC 7638 thumbprint of the account's key, which HAProxy must answer challenges with.
    - After a rollover (or in check mode, before one) the new key's.
    - Null in check mode when the key file would be generated.
  returned: success
  type: str
  sample: lCufto4sDRTHdmWL0EugFywGV54hBCuTTXvwifi65R4
status:
  description: The account status at the CA (V(valid), V(deactivated)), or null when there is no account.
  returned: success
  type: str
  sample: valid
contact:
  description: The account's contact URIs.
  returned: success
  type: list
  elements: str
  sample: ["mailto:ops@example.com"]
key_created:
  description: Whether the account key file was generated by this run (or would be, in check mode).
  returned: success
  type: bool
  sample: false
rolled_over:
  description:
    - Whether this run sent the key change (or would, in check mode); V(false) when the new key was
      the account's already, and without O(new_account_key_path) or O(new_account_key_content).
  returned: success
  type: bool
  sample: true
  version_added: 0.2.0
old_thumbprint:
  description: The thumbprint of the account key given (O(account_key_path)); null without a new key.
  returned: success
  type: str
  sample: lCufto4sDRTHdmWL0EugFywGV54hBCuTTXvwifi65R4
  version_added: 0.2.0
new_thumbprint:
  description:
    - The thumbprint of the new key; null without one, and in check mode when its file would be generated.
  returned: success
  type: str
  sample: 8mZ2VbyeS-gJjcrDQgVRBfkW0fh1YWcKDjkXkN0nmhI
  version_added: 0.2.0
new_key_created:
  description: Whether the file O(new_account_key_path) was generated by this run (or would be, in check mode).
  returned: success
  type: bool
  sample: false
  version_added: 0.2.0
ca_requests:
  description: Number of HTTP requests sent to the ACME server.
  returned: success, except when there is no account key yet in check mode, or none to deactivate
  type: int
  sample: 3
directory:
  description: The value of O(directory) that is neither a known alias nor an C(https://) URL.
  returned: when the module fails on O(directory)
  type: str
  sample: lets_encrypt
problem:
  description: The problem document (RFC 8555 section 6.7) the ACME server refused the request with.
  returned: when the module fails on a refusal of the ACME server
  type: dict
  contains:
    type:
      description: The problem type.
      type: str
      returned: always
      sample: urn:ietf:params:acme:error:unauthorized
    detail:
      description: The server's explanation.
      type: str
      returned: always
      sample: External account binding is required
    status:
      description: The HTTP status of the refusal.
      type: int
      returned: always
      sample: 403
url:
  description: The URL of the ACME request that failed.
  returned: when the module fails on a refusal of the ACME server, or on a request without an answer
  type: str
  sample: https://acme-v02.api.letsencrypt.org/acme/new-acct
"""

from ansible.module_utils import basic

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _defaults
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import account_run
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.common_args import (
    MUTUALLY_EXCLUSIVE,
    REQUIRED_ONE_OF,
    REQUIRED_TOGETHER,
    acme_argument_spec,
    missing_library,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._module import run_module
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import KEY_TYPES


def main() -> None:
    spec = acme_argument_spec()
    spec.update(
        state={"type": "str", "default": "present", "choices": ["present", "absent"]},
        account_key_type={"type": "str", "default": _defaults.KEY_TYPE, "choices": list(KEY_TYPES)},
        new_account_key_path={"type": "path", "no_log": False},
        new_account_key_content={"type": "str", "no_log": True},
        owner={"type": "str"},
        group={"type": "str"},
    )
    run_module(
        basic, account_run.run, missing=missing_library,
        argument_spec=spec,
        mutually_exclusive=[*MUTUALLY_EXCLUSIVE, ("new_account_key_path", "new_account_key_content")],
        required_one_of=REQUIRED_ONE_OF,
        required_together=REQUIRED_TOGETHER,
        supports_check_mode=True,
    )


if __name__ == "__main__":
    main()
