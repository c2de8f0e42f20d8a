#!/usr/bin/python
# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: acme_stateless_order
short_description: Ensure valid ACME certificates whose HTTP-01 challenges HAProxy answers statelessly
version_added: 0.1.0
description:
  - Ensures that C(<cert_dir>/<name>.pem) holds a valid certificate for the domains asked, as a
    PEM bundle in HAProxy's format (leaf, chain, private key).
  - A certificate that is still valid is left alone (no request to the CA when O(use_ari=false)).
    Otherwise the module orders a new one (RFC 8555 section 7.4), lets the CA validate HTTP-01
    against HAProxy (which answers C(<token>.<thumbprint>) from its configuration, so nothing is
    provisioned for the challenge), finalizes with a new key and writes the bundle atomically.
  - It renews when the file is missing or unusable, its names, key type or recorded O(profile) differ
    from what is asked, or it is time. The CA's renewal window (ARI, RFC 9773) says when, whenever the
    CA offers one. Otherwise the lifetime rule does, renewing when less than a third of the certificate's
    own lifetime is left (half of it for lifetimes under 10 days), so 30 days before the end of a
    90-day certificate, 15 of a 45-day one and 3 of a 6-day one. An explicit O(remaining_days) renews
    earlier. O(force) renews anyway. RV(certificates[].reason) always names the rule that decided.
  - No setting renews on every run. An O(remaining_days) at or above a certificate's lifetime would,
    so the lifetime rule decides for that certificate instead, and RV(certificates[].reason) says so.
  - One certificate (O(domains), O(name)) or many (O(certificates)); many are ordered concurrently
    over one connection pool. Every certificate gets its own entry in RV(certificates); one failure
    does not stop the others, and the module fails at the end naming each failed certificate.
  - The account must exist. If O(terms_agreed=true) and it does not, it is created (as
    M(tlsops.haproxy_acme.acme_account) would), only when something must be ordered.
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
  domains:
    description:
      - The DNS names and IP addresses of one certificate.
      - Names are lower-cased and one trailing dot is removed. An IPv4 or IPv6 address is ordered as an
        RFC 8738 C(ip) identifier and written in its RFC 5952 form (lower case, zeros compressed, C([...])
        brackets dropped), which is how RV(certificates[].domains) reports it.
      - The first DNS name is also the common name; an address never is, and a certificate for addresses
        only has none.
      - Refused before anything is sent are wildcards (HTTP-01 cannot validate them), zone-scoped addresses
        (C(fe80::1%eth0)), IPv4-mapped IPv6 addresses (give the IPv4 address), and unspecified and multicast
        addresses.
      - The CA validates an address on port 80 of that address. Clients of C(https://<address>/) send no
        SNI; see the C(haproxy_ip_certificates) variable of the P(tlsops.haproxy_acme.haproxy#role) role.
        Let's Encrypt issues address certificates only with the V(shortlived) O(profile).
      - Mutually exclusive with O(certificates).
    type: list
    elements: str
  name:
    description:
      - The certificate's name; the file is C(<cert_dir>/<name>.pem). Defaults to the first domain.
      - Letters, digits and C(. _ - @ + =) only; no slash, no leading dot. Give one for an IPv6 address
        (a certificate name has no colon).
    type: str
  certificates:
    description:
      - Many certificates in one call, ordered concurrently (see O(concurrency)).
      - Mutually exclusive with O(domains) and O(name).
    type: list
    elements: dict
    suboptions:
      name:
        description: The certificate's name; defaults to its first domain.
        type: str
      domains:
        description: Its DNS names and IP addresses, as O(domains).
        type: list
        elements: str
        required: true
      key_type:
        description: Its key type; defaults to O(key_type).
        type: str
        choices: [ec256, ec384, rsa2048, rsa3072, rsa4096]
      profile:
        description: Its ACME profile; defaults to O(profile).
        type: str
      bundle_facts:
        description:
          - What a host that holds this certificate's bundle reports of it, its
            RV(tlsops.haproxy_acme.haproxy_runtime_cert_info#module:certificates[].bundle_facts), as it is.
          - Used only when O(cert_dir) has no file for the certificate. The renewal rule then decides
            from these facts as it would from the file. A certificate still good is RV(certificates[].action=unchanged)
            with nothing written, and one that is due is ordered with a new key (O(reuse_key) needs the file).
          - The fleet's C(renew) passes it, so that it copies a bundle to the controller only when some node must be
            sent it.
        type: str
        version_added: 0.2.0
  cert_dir:
    description:
      - Directory of the PEM bundles, typically HAProxy's C(crt) directory. It must exist.
    type: path
    required: true
  key_type:
    description:
      - Type of the certificate keys. A certificate with another key type is renewed.
    type: str
    choices: [ec256, ec384, rsa2048, rsa3072, rsa4096]
    default: ec256
  reuse_key:
    description:
      - Keep the current private key on renewal (when it has the type asked) instead of generating a new one.
    type: bool
    default: false
  remaining_days:
    description:
      - Renew when fewer days than this are left before the certificate expires, even when the CA's renewal
        window (ARI) has not opened yet.
      - When not set, the lifetime rule decides (a third of the certificate's lifetime, half for lifetimes under
        10 days), unless the CA's renewal window does.
      - A value at or above a certificate's lifetime is not used for that certificate (it would renew on every
        run), so the lifetime rule decides instead, and RV(certificates[].reason) says so.
    type: int
  profile:
    description:
      - The ACME profile to order certificates with (the C(profile) field of a new order), for example
        Let's Encrypt's V(classic) (90 days, 64 from 2027-02-10), V(tlsserver) (45 days) or V(shortlived)
        (160 hours, the only one for IP addresses).
      - It must be one the CA lists in its directory's C(meta.profiles); otherwise that certificate fails with
        a message naming the profiles offered. Checked when something is ordered (not in check mode).
      - When not set, no profile is sent and the CA picks its default. Note that a CA offering several
        profiles may pick any of them for an order that names none.
      - The profile is recorded in the bundle, as a line of text before the first PEM block, which HAProxy and
        OpenSSL ignore. A certificate that records another profile than the one asked is renewed on the next
        run. One that records none (ordered before, or by another tool) gets the profile at its next renewal;
        set O(force) once to switch at once.
      - Per certificate with O(certificates[].profile).
    type: str
  force:
    description:
      - Renew every certificate asked, valid or not.
    type: bool
    default: false
  use_ari:
    description:
      - Ask the CA for its renewal window (ARI, RFC 9773) for certificates that fit what is asked, and name the
        certificate being replaced in new orders (C(replaces)). The window decides when to renew whenever the CA
        offers one.
      - C(replaces) is a hint (RFC 9773 section 5). When the CA refuses an order because of it (the certificate
        was issued to another account, or the CA cannot find it), the order is placed once more without it, and
        RV(certificates[].reason) says so. Only a rate limit or an unavailable CA is final.
      - Costs one request for the directory plus one GET per valid certificate when the CA offers
        C(renewalInfo) (Let's Encrypt does). Set to V(false) for a run that sends no request at all
        when nothing is due.
      - A CA without ARI, or a failed ARI look-up, means "decide as usual".
    type: bool
    default: true
  preferred_chain:
    description:
      - Common name of the root (the issuer of the top-most certificate) of the chain to prefer among
        those the CA offers (C(Link rel="alternate")). The default chain is used when none matches.
    type: str
  concurrency:
    description:
      - How many certificates are ordered at the same time (1 to 16).
    type: int
    default: 4
  poll_timeout:
    description:
      - Seconds to wait for each authorization and order to become valid. Polling starts after 10 ms and
        backs off up to 2 s between requests, or follows the CA's C(Retry-After).
    type: float
    default: 120
  lock_timeout:
    description:
      - Seconds to wait for another run on the same O(cert_dir) to finish (the renewal timer's job on the host,
        or another playbook), before this one fails with a message that says so.
      - Runs on one certificate directory take turns through a lock file, C(<cert_dir>/.tlsops-haproxy-acme.lock),
        which HAProxy's directory loader skips (a dotfile). Check mode takes no lock.
    type: float
    default: 300
  owner:
    description:
      - Owner of the certificate files (also applied to existing, unchanged files).
    type: str
  group:
    description:
      - Group of the certificate files, typically C(haproxy) (also applied to existing, unchanged files).
    type: str
  mode:
    description:
      - Mode of the certificate files, as an octal string (also applied to existing, unchanged files).
    type: raw
    default: '0640'
attributes:
  check_mode:
    support: full
    details:
      - Check mode decides from the files alone and sends no request to the CA; a renewal that only
        the CA's ARI window would ask for is therefore not predicted.
  diff_mode:
    support: full
    details:
      - The diff shows serial, expiry and names per certificate, never key material.
  idempotent:
    support: full
    details:
      - A second run reports V(unchanged) and places no order, unless O(force=true).
seealso:
  - module: tlsops.haproxy_acme.acme_account
  - name: RFC 8555 section 8.3 (HTTP-01)
    description: The challenge HAProxy answers statelessly.
    link: https://www.rfc-editor.org/rfc/rfc8555#section-8.3
  - name: RFC 9773 (ACME Renewal Information)
    description: The renewal windows used with O(use_ari).
    link: https://www.rfc-editor.org/rfc/rfc9773
notes:
  - The private key is written with the certificate in one file, mode O(mode), and never appears in results, diffs or logs.
  - A file is replaced atomically (a dotfile in the same directory renamed over it, which HAProxy's
    directory loader skips), and only after the new bundle was checked; on failure the old file stays.
  - Hot-load the new files into HAProxy with M(tlsops.haproxy_acme.haproxy_runtime_cert).
"""

EXAMPLES = r"""
- name: One certificate for two names
  tlsops.haproxy_acme.acme_stateless_order:
    directory: letsencrypt
    account_key_path: /var/lib/acme/account.key
    domains: [example.com, www.example.com]
    cert_dir: /etc/haproxy/certs
    owner: acme
    group: haproxy
  register: cert

- name: Many certificates in one call, eight at a time
  tlsops.haproxy_acme.acme_stateless_order:
    directory: letsencrypt
    account_key_path: /var/lib/acme/account.key
    terms_agreed: true
    email: ops@example.com
    cert_dir: /etc/haproxy/certs
    concurrency: 8
    certificates:
      - name: shop
        domains: [shop.example.org, www.shop.example.org]
      - name: blog
        domains: [blog.example.org]
        key_type: rsa2048
  register: certs

- name: Show what was done
  ansible.builtin.debug:
    msg: "{{ item.name }}: {{ item.action }} ({{ item.reason }}), expires {{ item.not_after }}"
  loop: "{{ certs.certificates }}"

- name: Short-lived certificates from Let's Encrypt, one of them for an IP address
  tlsops.haproxy_acme.acme_stateless_order:
    directory: letsencrypt
    account_key_path: /var/lib/acme/account.key
    cert_dir: /etc/haproxy/certs
    profile: tlsserver
    certificates:
      - name: shop
        domains: [shop.example.org]
      - name: edge-ip
        domains: [203.0.113.10]
        profile: shortlived

- name: Renew now whatever is left
  tlsops.haproxy_acme.acme_stateless_order:
    directory: letsencrypt
    account_key_content: "{{ acme_account_key }}"
    domains: [example.com]
    cert_dir: /etc/haproxy/certs
    force: true
"""

RETURN = r"""
certificates:
  description: One entry per certificate, in the order asked.
  returned: success, and when a certificate failed
  type: list
  elements: dict
  contains:
    name:
      description: The certificate's name.
      returned: always
      type: str
      sample: example.com
    domains:
      description: Its domains as asked, normalised.
      returned: always
      type: list
      elements: str
      sample: [example.com, www.example.com]
    path:
      description: The PEM bundle's path.
      returned: always
      type: str
      sample: /etc/haproxy/certs/example.com.pem
    action:
      description: V(issued) (there was no file), V(renewed), V(unchanged) or V(failed).
      returned: always
      type: str
      sample: issued
    reason:
      description: Why it was ordered, kept or failed, naming the rule that decided.
      returned: always
      type: str
      sample: "valid, 60.2 days left of 90.0; the lifetime rule renews below 30.0"
    profile:
      description: The ACME profile recorded in the file now (null when none is).
      returned: always
      type: str
      sample: tlsserver
    replaces:
      description:
        - The ARI certificate identifier (RFC 9773) of the certificate that the new order replaces, as the
          CA's order names it; null when nothing was ordered, the CA has no ARI, or the CA refused it.
      returned: always
      type: str
      sample: aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE
    changed:
      description: Whether the file changed (or would, in check mode).
      returned: always
      type: bool
      sample: true
    serial:
      description: Serial of the certificate now in the file (upper-case hex), null if none.
      returned: always
      type: str
      sample: 04A1B2C3D4E5F60718293A4B5C6D7E8F
    not_before:
      description: Start of validity (ISO 8601, UTC); null when there is no certificate.
      returned: always
      type: str
      sample: "2025-01-01T00:00:00Z"
    not_after:
      description: End of validity (ISO 8601, UTC); null when there is no certificate.
      returned: always
      type: str
      sample: "2025-04-01T00:00:00Z"
    days_left:
      description: Days until it expires; null when there is no certificate.
      returned: always
      type: float
      sample: 89.9
    issuer:
      description: The issuer's distinguished name; null when there is no certificate.
      returned: always
      type: str
      sample: CN=R11,O=Let's Encrypt,C=US
    msg:
      description: What went wrong, naming the certificate and the domain.
      type: str
      returned: when RV(certificates[].action=failed)
      sample: "certificate 'shop' (shop.example.org): validation of shop.example.org failed: unauthorized: ..."
ca_requests:
  description: Number of HTTP requests sent to the ACME server (0 when nothing was due and O(use_ari=false)).
  returned: success, and when a certificate failed
  type: int
  sample: 0
name:
  description: The certificate's name (single-certificate calls only; see RV(certificates)).
  returned: with O(domains), whenever RV(certificates) is
  type: str
  sample: example.com
domains:
  description: Its domains.
  returned: with O(domains), whenever RV(certificates) is
  type: list
  elements: str
  sample: [example.com]
path:
  description: Its file.
  returned: with O(domains), whenever RV(certificates) is
  type: str
  sample: /etc/haproxy/certs/example.com.pem
action:
  description: V(issued), V(renewed), V(unchanged) or V(failed).
  returned: with O(domains), whenever RV(certificates) is
  type: str
  sample: unchanged
reason:
  description: Why.
  returned: with O(domains), whenever RV(certificates) is
  type: str
  sample: valid, 60.2 days left
serial:
  description: Serial of the certificate in the file.
  returned: with O(domains), whenever RV(certificates) is
  type: str
  sample: 04A1B2C3D4E5F60718293A4B5C6D7E8F
not_before:
  description: Start of validity.
  returned: with O(domains), whenever RV(certificates) is
  type: str
  sample: "2025-01-01T00:00:00Z"
not_after:
  description: End of validity.
  returned: with O(domains), whenever RV(certificates) is
  type: str
  sample: "2025-04-01T00:00:00Z"
days_left:
  description: Days left.
  returned: with O(domains), whenever RV(certificates) is
  type: float
  sample: 60.2
issuer:
  description: The issuer's distinguished name.
  returned: with O(domains), whenever RV(certificates) is
  type: str
  sample: CN=R11,O=Let's Encrypt,C=US
profile:
  description: The ACME profile recorded in the file.
  returned: with O(domains), whenever RV(certificates) is
  type: str
  sample: shortlived
replaces:
  description: The ARI identifier of the certificate the new order replaced (see RV(certificates[].replaces)).
  returned: with O(domains), whenever RV(certificates) is
  type: str
  sample: aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE
uid:
  description:
    - Numeric owner of the file RV(path) after the run (before it, in check mode). Ansible's C(AnsibleModule) adds this
      and the file attributes below to every result with a C(path) that exists.
  returned: when RV(path) is returned and the file exists
  type: int
  sample: 0
gid:
  description: Numeric group of the file RV(path).
  returned: when RV(path) is returned and the file exists
  type: int
  sample: 118
owner:
  description: Owner of the file RV(path) (the user name); not O(owner).
  returned: when RV(path) is returned and the file exists
  type: str
  sample: acme
group:
  description: Group of the file RV(path) (the group name); not O(group).
  returned: when RV(path) is returned and the file exists
  type: str
  sample: haproxy
mode:
  description: Mode of the file RV(path), an octal string; not O(mode).
  returned: when RV(path) is returned and the file exists
  type: str
  sample: "0640"
state:
  description: What the path is, V(file) (or V(link), V(hard) for a file with several links, V(directory)).
  returned: when RV(path) is returned and the file exists
  type: str
  sample: file
size:
  description: Size of the file RV(path) in bytes.
  returned: when RV(path) is returned and the file exists
  type: int
  sample: 5268
secontext:
  description: SELinux context of the file RV(path).
  returned: when RV(path) is returned and the file exists, on a host with SELinux enabled
  type: str
  sample: system_u:object_r:cert_t:s0
directory:
  description: The value of O(directory) that is neither a known alias nor an C(https://) URL.
  returned: when the module fails on O(directory)
  type: str
  sample: lets_encrypt
"""

from ansible.module_utils import basic

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _defaults
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import order_run
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.common_args import (
    MUTUALLY_EXCLUSIVE,
    REQUIRED_ONE_OF,
    REQUIRED_TOGETHER,
    acme_argument_spec,
    missing_library,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._module import run_module
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import KEY_TYPES


def argument_spec() -> dict[str, dict[str, object]]:
    spec = acme_argument_spec()
    spec.update(
        domains={"type": "list", "elements": "str"},
        name={"type": "str"},
        certificates={"type": "list", "elements": "dict", "options": {
            "name": {"type": "str"},
            "domains": {"type": "list", "elements": "str", "required": True},
            "key_type": {"type": "str", "choices": list(KEY_TYPES)},
            "profile": {"type": "str"},
            "bundle_facts": {"type": "str"},
        }},
        cert_dir={"type": "path", "required": True},
        key_type={"type": "str", "default": _defaults.KEY_TYPE, "choices": list(KEY_TYPES)},
        reuse_key={"type": "bool", "default": False},
        remaining_days={"type": "int"},
        profile={"type": "str"},
        force={"type": "bool", "default": False},
        use_ari={"type": "bool", "default": _defaults.USE_ARI},
        preferred_chain={"type": "str"},
        concurrency={"type": "int", "default": _defaults.CONCURRENCY},
        poll_timeout={"type": "float", "default": _defaults.POLL_TIMEOUT},
        lock_timeout={"type": "float", "default": _defaults.LOCK_TIMEOUT},
        owner={"type": "str"},
        group={"type": "str"},
        mode={"type": "raw", "default": _defaults.mode_text(_defaults.BUNDLE_MODE)},
    )
    return spec


def main() -> None:
    run_module(
        basic, order_run.run, missing=missing_library,
        argument_spec=argument_spec(),
        mutually_exclusive=[*MUTUALLY_EXCLUSIVE, ("domains", "certificates"), ("name", "certificates")],
        required_one_of=[*REQUIRED_ONE_OF, ("domains", "certificates")],
        required_together=REQUIRED_TOGETHER,
        supports_check_mode=True,
    )


if __name__ == "__main__":
    main()
