#!/usr/bin/python
# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: haproxy_runtime_cert_info
short_description: List the certificates a running HAProxy holds
version_added: 0.1.0
description:
  - Reads, over HAProxy's Runtime API, every certificate a running HAProxy holds (or those
    named in O(paths)), with its status, serial, SANs, validity, days left, issuer, algorithm,
    SHA-1 fingerprint and chain, and the crt-lists that serve it.
  - This is what HAProxy serves now, not what is on disk; the two differ after a failed push or
    before a restart.
  - Also reports the HAProxy process behind the socket (RV(process), from C(show info)); its
    worker PID changes on every reload or restart, so comparing two reads proves that none happened.
  - Uses one connection and few round trips (C(show ssl cert), then every
    C(show ssl cert <name>) pipelined, then C(show ssl crt-list), then C(show info)).
author:
  - tlsops.haproxy_acme contributors (@tlsops)
requirements:
  - Only the Python standard library on the managed host (no cryptography, no requests); every
    field comes from HAProxy's own C(show ssl cert)
extends_documentation_fragment:
  - tlsops.haproxy_acme.attributes
  - tlsops.haproxy_acme.attributes.actiongroup_haproxy
options:
  socket:
    description:
      - HAProxy's stats sockets, each a unix socket path or C(host:port). A single string is read as
        a list of one; the same type as in M(tlsops.haproxy_acme.haproxy_runtime_cert), so one value
        in C(module_defaults) for the C(group/tlsops.haproxy_acme.haproxy) action group serves both.
      - Every socket is read. The top-level results are those of the first; RV(sockets) has each
        one's. The module fails if any socket cannot be read.
      - C(level operator) is enough for the certificates; HAProxy shows crt-lists only at
        C(level admin), so below it RV(crt_lists) and RV(certificates[].crt_lists) are null.
    type: list
    elements: str
    default: [/run/haproxy/admin.sock]
  paths:
    description:
      - Only these certificates (their names in HAProxy, that is their full paths). A name HAProxy
        does not hold is returned with RV(certificates[].status=Absent).
    type: list
    elements: str
    aliases: [names]
  expiring_within_days:
    description:
      - Only certificates with fewer than this many days left (expired ones included).
    type: float
  timeout:
    description:
      - Seconds to wait for the socket to connect and for each reply.
    type: float
    default: 10
attributes:
  check_mode:
    support: full
    details:
      - The module only reads; it runs the same in check mode.
  diff_mode:
    support: N/A
    details:
      - The module only reads; there is nothing to show a difference of.
  idempotent:
    support: full
seealso:
  - module: tlsops.haproxy_acme.haproxy_runtime_cert
  - name: HAProxy management guide, C(show ssl cert)
    description: The fields reported here.
    link: https://docs.haproxy.org/2.6/management.html#9.3-show%20ssl%20cert
"""

EXAMPLES = r"""
- name: What does HAProxy serve?
  tlsops.haproxy_acme.haproxy_runtime_cert_info:
  register: served

- name: Certificates with fewer than 30 days left
  tlsops.haproxy_acme.haproxy_runtime_cert_info:
    socket: /run/haproxy/admin.sock
    expiring_within_days: 30
  register: expiring

- name: Fail when something expires soon
  ansible.builtin.assert:
    that: expiring.certificates | length == 0
    fail_msg: "Expiring soon: {{ expiring.certificates | map(attribute='path') | join(', ') }}"

- name: One certificate
  tlsops.haproxy_acme.haproxy_runtime_cert_info:
    paths: [/etc/haproxy/certs/example.com.pem]

- name: Read again after deploying certificates
  tlsops.haproxy_acme.haproxy_runtime_cert_info:
  register: served_after

- name: Prove that HAProxy was not reloaded in between (a reload starts a new worker)
  ansible.builtin.assert:
    that: served_after.process.pid == served.process.pid
"""

RETURN = r"""
certificates:
  description: One entry per certificate of the (first) socket, in HAProxy's order (or the order of O(paths)).
  returned: success
  type: list
  elements: dict
  contains:
    path:
      description: The certificate's name in HAProxy (its file path).
      type: str
      returned: always
      sample: /etc/haproxy/certs/example.com.pem
    status:
      description:
        - HAProxy's status; V(Used) (served), V(Unused) (loaded, in no crt-list), V(Empty) (a
          C(new ssl cert) never filled), V(Uncommitted) (HAProxy 3.x, a transaction), or
          V(Absent) for a name in O(paths) that HAProxy does not hold.
      type: str
      returned: always
      sample: Used
    serial:
      description: Serial of the leaf, upper-case hex.
      type: str
      returned: always
      sample: 04A3F1C2D5E6B7A8091A2B3C4D5E6F708192
    not_before:
      description: Start of validity, ISO 8601 UTC.
      type: str
      returned: always
      sample: "2025-01-01T00:00:00Z"
    not_after:
      description: End of validity, ISO 8601 UTC.
      type: str
      returned: always
      sample: "2025-03-31T23:59:59Z"
    days_left:
      description: Days until RV(certificates[].not_after), one decimal; negative when expired.
      type: float
      returned: always
      sample: 61.5
    domains:
      description: DNS subject alternative names.
      type: list
      elements: str
      returned: always
      sample: [example.com, www.example.com]
    subject:
      description: Subject, in HAProxy's one-line form.
      type: str
      returned: always
      sample: /CN=example.com
    issuer:
      description: Issuer, in HAProxy's one-line form.
      type: str
      returned: always
      sample: /C=US/O=Let's Encrypt/CN=R11
    algorithm:
      description: Key algorithm as HAProxy prints it.
      type: str
      returned: always
      sample: EC256
    sha1_fingerprint:
      description: SHA-1 fingerprint of the leaf.
      type: str
      returned: always
      sample: 417A11CAE25F607B24F638B4A8AEE51D1E211477
    chain:
      description: Subjects of the chain certificates.
      type: list
      elements: str
      returned: always
      sample: [/C=US/O=Let's Encrypt/CN=R11]
    crt_lists:
      description: The crt-lists (and C(crt) directories) that serve it; null on a socket below C(level admin).
      type: list
      elements: str
      returned: always
      sample: [/etc/haproxy/certs]
    transaction:
      description: Whether an uncommitted certificate transaction is open for it.
      type: bool
      returned: always
      sample: false
transaction:
  description: The certificate an uncommitted transaction is open for in the (first) socket's process, if any (HAProxy allows one).
  returned: success
  type: str
  sample: null
crt_lists:
  description: Every crt-list and C(crt) directory of the (first) socket, with the certificates in it; null on a socket below C(level admin).
  returned: success
  type: dict
  sample: {/etc/haproxy/certs: [/etc/haproxy/certs/example.com.pem]}
sockets:
  description:
    - One entry per O(socket), in the order given, each with C(socket) and its own C(certificates),
      C(transaction), C(crt_lists) and C(process), as at the top level.
  returned: success
  type: list
  elements: dict
  sample: [{socket: /run/haproxy/admin.sock, certificates: [], transaction: null, crt_lists: {}, process: {pid: 4711}}]
  contains:
    socket:
      description: The socket, as given in O(socket).
      type: str
      returned: always
      sample: /run/haproxy/admin.sock
    certificates:
      description: This socket's certificates, with the fields of RV(certificates).
      type: list
      elements: dict
      returned: always
      sample: []
    transaction:
      description: As RV(transaction), for this socket's process.
      type: str
      returned: always
      sample: null
    crt_lists:
      description: As RV(crt_lists), for this socket's process.
      type: dict
      returned: always
      sample: {/etc/haproxy/certs: [/etc/haproxy/certs/example.com.pem]}
    process:
      description: As RV(process), for this socket's process.
      type: dict
      returned: always
      sample: {pid: 4711, version: 2.6.12-1+deb12u1, uptime_sec: 86400}
process:
  description:
    - The HAProxy process that answers on the (first) socket, from C(show info); null when the reply has no C(Pid).
    - In master-worker mode (C(-W), C(-Ws), Debian's unit) this is the worker, which a reload replaces.
  returned: success
  type: dict
  contains:
    pid:
      description: Its PID (as seen in its own PID namespace).
      type: int
      returned: always
      sample: 4711
    version:
      description: HAProxy's version string.
      type: str
      returned: always
      sample: 2.6.12-1+deb12u1
    uptime_sec:
      description: Seconds since this process started.
      type: int
      returned: always
      sample: 86400
socket:
  description: The socket that could not be read.
  returned: when the module fails on a socket
  type: str
  sample: /run/haproxy/admin.sock
"""

from ansible.module_utils import basic

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import info
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.module_args import info_argument_spec
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._module import run_module


def main() -> None:
    run_module(basic, info.run, argument_spec=info_argument_spec(), supports_check_mode=True)


if __name__ == "__main__":
    main()
