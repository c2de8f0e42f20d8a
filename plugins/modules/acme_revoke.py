#!/usr/bin/python
# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: acme_revoke
short_description: Revoke a certificate at its ACME CA
version_added: 0.2.0
description:
  - Asks the ACME CA that issued a certificate to revoke it (RFC 8555 section 7.6), with an RFC 5280
    reason code.
  - The request is signed by the ACME account (O(revoke_with=account_key), for a certificate the
    account holds) or by the certificate's own private key (O(revoke_with=certificate_key), the proof
    a CA wants for V(keyCompromise), and the way to revoke a certificate of an account whose key is
    lost or of another client).
  - Idempotent; a certificate the CA has revoked already (C(alreadyRevoked)) is a success with
    C(changed=false).
  - Revocation is final. Replace a certificate that is still served before revoking it, or clients
    reject the site; see the incident response guide in the collection's docs.
  - The options O(email), O(terms_agreed), O(eab_kid) and O(eab_hmac_key) are accepted for
    C(module_defaults) of the C(acme) action group and not used.
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
  certificate_path:
    description:
      - The certificate to revoke, a PEM file. The first certificate in it is the one revoked, so an
        HAProxy bundle (leaf, chain, key) as the ACME modules write it works as it is.
      - Exactly one of O(certificate_path) and O(certificate_content) is needed.
    type: path
  certificate_content:
    description:
      - The certificate to revoke as a PEM string (the first certificate in it). Never logged, as it may
        be a whole bundle with its private key.
    type: str
  revoke_with:
    description:
      - V(account_key) signs with the ACME account (O(account_key_path) or O(account_key_content)),
        which must be the account that holds the certificate (or has authorizations for all its names).
      - V(certificate_key) signs with the certificate's private key and its JWK, the key taken from
        O(private_key_path) or O(private_key_content), else from the certificate file itself when it
        is a bundle that holds the key. No account is needed.
    type: str
    choices: [account_key, certificate_key]
    default: account_key
  private_key_path:
    description:
      - The certificate's private key, a PEM file, for O(revoke_with=certificate_key) when the
        certificate file holds no key.
    type: path
  private_key_content:
    description:
      - The certificate's private key as a PEM string, for O(revoke_with=certificate_key). Never logged
        and never returned.
    type: str
  reason:
    description:
      - The RFC 5280 revocation reason, by name or number; unset sends none (which the CA records as
        V(unspecified)).
      - V(unspecified) (0), V(keyCompromise) (1), V(cACompromise) (2), V(affiliationChanged) (3),
        V(superseded) (4), V(cessationOfOperation) (5), V(certificateHold) (6), V(removeFromCRL) (8),
        V(privilegeWithdrawn) (9), V(aACompromise) (10). Names are matched without regard to case,
        C(_) or C(-) (V(key_compromise) works too).
      - V(keyCompromise) when the private key has leaked, V(superseded) when a new certificate replaces
        it, V(cessationOfOperation) when the names are no longer served.
      - A CA may accept only some of them; a reason the CA refuses fails with its
        C(badRevocationReason) error, and a number that is no reason (such as 7) fails before
        anything is sent.
    type: raw
attributes:
  check_mode:
    support: full
    details:
      - In check mode the certificate, the key and the reason are checked and nothing is sent; the
        result predicts a revocation (C(changed=true)) even for a certificate revoked already.
  diff_mode:
    support: none
  idempotent:
    support: full
seealso:
  - module: tlsops.haproxy_acme.acme_stateless_order
  - module: tlsops.haproxy_acme.acme_account
  - name: RFC 8555 section 7.6 (certificate revocation)
    description: The request sent.
    link: https://www.rfc-editor.org/rfc/rfc8555#section-7.6
  - name: RFC 5280 section 5.3.1 (reason codes)
    description: The reasons of O(reason).
    link: https://www.rfc-editor.org/rfc/rfc5280#section-5.3.1
"""

EXAMPLES = r"""
- name: Revoke a certificate whose private key has leaked, signed by that key
  tlsops.haproxy_acme.acme_revoke:
    directory: letsencrypt
    certificate_path: /var/lib/acme/compromised/example.com.pem
    revoke_with: certificate_key
    reason: keyCompromise

- name: Revoke a certificate that a new one replaced, signed by the account
  tlsops.haproxy_acme.acme_revoke:
    directory: letsencrypt
    account_key_path: /var/lib/acme/account/account.key
    certificate_content: "{{ old_certificate_pem }}"
    reason: superseded

- name: A certificate whose names are no longer served, by number
  tlsops.haproxy_acme.acme_revoke:
    directory: letsencrypt
    account_key_path: /var/lib/acme/account/account.key
    certificate_path: /etc/haproxy/certs/old.example.com.pem
    reason: 5
"""

RETURN = r"""
revoked:
  description: Whether the certificate is revoked now (or would be, in check mode).
  returned: success
  type: bool
  sample: true
already_revoked:
  description: Whether the CA answered that it was revoked already (C(alreadyRevoked)); then C(changed=false).
  returned: success
  type: bool
  sample: false
serial:
  description: Serial of the certificate, upper-case hex.
  returned: success
  type: str
  sample: 04A3F1C2D5E6B7A8091A2B3C4D5E6F708192
domains:
  description: Its names (DNS names and IP addresses).
  returned: success
  type: list
  elements: str
  sample: [example.com, www.example.com]
not_after:
  description: End of its validity, ISO 8601 UTC.
  returned: success
  type: str
  sample: "2025-03-31T23:59:59Z"
reason:
  description:
    - The reason sent, by its RFC 5280 name; null when none was.
    - When the module fails on O(reason), the value refused.
  returned: success, and when the module fails on O(reason)
  type: str
  sample: keyCompromise
reason_code:
  description: The reason sent, by its number; null when none was.
  returned: success
  type: int
  sample: 1
revoked_with:
  description: V(account_key) or V(certificate_key).
  returned: success
  type: str
  sample: certificate_key
account_uri:
  description: The account that signed the request; null for O(revoke_with=certificate_key) and in check mode.
  returned: success
  type: str
  sample: https://acme-v02.api.letsencrypt.org/acme/acct/123456789
ca_requests:
  description: HTTP requests sent to the CA (0 in check mode).
  returned: success
  type: int
  sample: 4
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
      sample: The certificate being revoked is not associated with this account
    status:
      description: The HTTP status of the refusal.
      type: int
      returned: always
      sample: 403
url:
  description: The URL of the ACME request that failed.
  returned: when the module fails on a refusal of the ACME server, or on a request without an answer
  type: str
  sample: https://acme-v02.api.letsencrypt.org/acme/revoke-cert
directory:
  description: The value of O(directory) that is neither a known alias nor an C(https://) URL.
  returned: when the module fails on O(directory)
  type: str
  sample: lets_encrypt
"""

from ansible.module_utils import basic

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import revoke
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.common_args import (
    MUTUALLY_EXCLUSIVE,
    REQUIRED_TOGETHER,
    acme_argument_spec,
    missing_library,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._module import run_module


def main() -> None:
    spec = acme_argument_spec()
    spec.update(
        certificate_path={"type": "path"},
        certificate_content={"type": "str", "no_log": True},
        revoke_with={"type": "str", "default": "account_key", "choices": ["account_key", "certificate_key"]},
        private_key_path={"type": "path", "no_log": False},
        private_key_content={"type": "str", "no_log": True},
        reason={"type": "raw"},
    )
    run_module(
        basic, revoke.run, missing=missing_library,
        argument_spec=spec,
        mutually_exclusive=[*MUTUALLY_EXCLUSIVE, ("certificate_path", "certificate_content"),
                            ("private_key_path", "private_key_content")],
        required_one_of=[("certificate_path", "certificate_content")],
        required_if=[("revoke_with", "account_key", ("account_key_path", "account_key_content"), True)],
        required_together=REQUIRED_TOGETHER,
        supports_check_mode=True,
    )


if __name__ == "__main__":
    main()
