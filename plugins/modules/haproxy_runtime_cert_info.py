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
  bundle_facts:
    description:
      - Also report what the renewal rule reads of each certificate's file on this host
        (RV(certificates[].bundle_facts)), so that M(tlsops.haproxy_acme.acme_stateless_order)
        can decide whether the certificate is due without a copy of the file (its
        O(tlsops.haproxy_acme.acme_stateless_order#module:certificates[].bundle_facts)). The fleet's
        C(renew) sets it, and copies a bundle to the controller only where one must be sent.
      - The facts come from the bundle index beside the files while a file is unchanged
        (C(.tlsops-haproxy-acme.index.json), no key material), else from the file, which needs the
        Python library C(cryptography) on the host; without it they are null where the index has none.
        What was read from files is kept in the index when its directory's run lock is free
        (not in check mode).
    type: bool
    default: false
    version_added: 0.2.0
  process_only:
    description:
      - Read only the process behind each socket (RV(process), one C(show info)), not the certificates;
        RV(certificates) is empty and RV(crt_lists) too. For a worker PID before and after a change, on a
        host with many certificates (listing 10,000 takes HAProxy seconds).
    type: bool
    default: false
    version_added: 0.2.0
  fields:
    description:
      - Only these keys of each entry of RV(certificates) (and of RV(sockets[].certificates)); all when
        empty. A playbook that reads the results of many hosts at once (the fleet's) is faster with fewer
        values to read.
    type: list
    elements: str
    choices: [path, status, serial, not_before, not_after, days_left, domains, subject, issuer, algorithm,
              sha1_fingerprint, chain, crt_lists, transaction, bundle_facts]
    version_added: 0.2.0
  as_json:
    description:
      - Return RV(certificates) (and each RV(sockets[].certificates)) as one JSON text,
        RV(certificates_json), instead of a list. A playbook that reads the results of many hosts at
        once through C(hostvars) (the fleet's C(renew)) handles one string per host far faster than
        hundreds of entries, each a value Ansible copies and templates. C(from_json) turns it back
        into the list.
    type: bool
    default: false
    version_added: 0.2.0
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

- name: Only HAProxy's worker PID, however many certificates it holds
  tlsops.haproxy_acme.haproxy_runtime_cert_info:
    process_only: true
  register: worker
"""

RETURN = r"""
certificates_json:
  description: With O(as_json), RV(certificates) as one compact JSON text (keys sorted).
  returned: success, with O(as_json)
  type: str
  sample: '[{"path":"/etc/haproxy/certs/example.com.pem","serial":"0A1B2C","status":"Used"}]'
certificates:
  description: One entry per certificate of the (first) socket, in HAProxy's order (or the order of O(paths)).
  returned: success, unless O(as_json) is set
  type: list
  elements: dict
  contains:
    path:
      description: The certificate's name in HAProxy (its file path).
      type: str
      returned: unless O(fields) leaves it out
      sample: /etc/haproxy/certs/example.com.pem
    status:
      description:
        - HAProxy's status; V(Used) (served), V(Unused) (loaded, in no crt-list), V(Empty) (a
          C(new ssl cert) never filled), V(Uncommitted) (HAProxy 3.x, a transaction), or
          V(Absent) for a name in O(paths) that HAProxy does not hold.
      type: str
      returned: unless O(fields) leaves it out
      sample: Used
    serial:
      description: Serial of the leaf, upper-case hex.
      type: str
      returned: unless O(fields) leaves it out
      sample: 04A3F1C2D5E6B7A8091A2B3C4D5E6F708192
    not_before:
      description: Start of validity, ISO 8601 UTC.
      type: str
      returned: unless O(fields) leaves it out
      sample: "2025-01-01T00:00:00Z"
    not_after:
      description: End of validity, ISO 8601 UTC.
      type: str
      returned: unless O(fields) leaves it out
      sample: "2025-03-31T23:59:59Z"
    days_left:
      description: Days until RV(certificates[].not_after), one decimal; negative when expired.
      type: float
      returned: unless O(fields) leaves it out
      sample: 61.5
    domains:
      description: DNS subject alternative names.
      type: list
      elements: str
      returned: unless O(fields) leaves it out
      sample: [example.com, www.example.com]
    subject:
      description: Subject, in HAProxy's one-line form.
      type: str
      returned: unless O(fields) leaves it out
      sample: /CN=example.com
    issuer:
      description: Issuer, in HAProxy's one-line form.
      type: str
      returned: unless O(fields) leaves it out
      sample: /C=US/O=Let's Encrypt/CN=R11
    algorithm:
      description: Key algorithm as HAProxy prints it.
      type: str
      returned: unless O(fields) leaves it out
      sample: EC256
    sha1_fingerprint:
      description: SHA-1 fingerprint of the leaf.
      type: str
      returned: unless O(fields) leaves it out
      sample: 417A11CAE25F607B24F638B4A8AEE51D1E211477
    chain:
      description: Subjects of the chain certificates.
      type: list
      elements: str
      returned: unless O(fields) leaves it out
      sample: [/C=US/O=Let's Encrypt/CN=R11]
    crt_lists:
      description: The crt-lists (and C(crt) directories) that serve it; null on a socket below C(level admin).
      type: list
      elements: str
      returned: unless O(fields) leaves it out
      sample: [/etc/haproxy/certs]
    transaction:
      description: Whether an uncommitted certificate transaction is open for it.
      type: bool
      returned: unless O(fields) leaves it out
      sample: false
    bundle_facts:
      description:
        - With O(bundle_facts), what the renewal rule reads of the file at RV(certificates[].path) on this
          host (its dates, names, key type, serial, recorded profile and ARI certID; never key material), as
          compact JSON text to hand to M(tlsops.haproxy_acme.acme_stateless_order)'s
          O(tlsops.haproxy_acme.acme_stateless_order#module:certificates[].bundle_facts) as it is.
        - Null when there is no such file, it cannot be read, or neither the index nor C(cryptography) can tell.
        - The file on disk, not what HAProxy serves; the two differ after a failed push.
      type: str
      returned: when O(bundle_facts) is set, unless O(fields) leaves it out
      sample: '{"cert_id":"...","info":{"serial":"04A3...","not_after":1767225599.0},"problem":null,"profile":null}'
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
      returned: unless O(as_json) is set
      sample: []
    certificates_json:
      description: With O(as_json), this socket's certificates as one JSON text, as RV(certificates_json).
      type: str
      returned: with O(as_json)
      sample: '[]'
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

import importlib.util
import typing as t

from ansible.module_utils import basic

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import info
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.module_args import info_argument_spec
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._index import RENEWAL_KIND
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._module import RunResult, run_module


def _facts_source() -> info.FactsSource | None:
    """The renewal rule's facts of a bundle. The rule needs cryptography, and importing it costs
    a tenth of a second on every node: it is imported only when a file must be read (the index
    answers for every file that is unchanged). None when the host has no cryptography."""
    if importlib.util.find_spec("cryptography") is None:
        return None

    def facts_of(data: bytes) -> dict[str, t.Any] | None:
        from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import renewal  # noqa: PLC0415 - only when a file is read

        return renewal.facts_of(data)

    return RENEWAL_KIND, facts_of


def _run(params: t.Mapping[str, t.Any], check_mode: bool = False) -> RunResult:
    return info.run(params, check_mode, facts_source=_facts_source)


def main() -> None:
    run_module(basic, _run, argument_spec=info_argument_spec(), supports_check_mode=True)


if __name__ == "__main__":
    main()
