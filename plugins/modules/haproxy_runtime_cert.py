#!/usr/bin/python
# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: haproxy_runtime_cert
short_description: Make a running HAProxy serve a certificate, without a reload
version_added: 0.1.0
description:
  - Ensures HAProxy serves a PEM bundle (leaf, chain, key) under a name, by its Runtime API
    (stats socket) with C(new ssl cert), C(set ssl cert), C(commit ssl cert) and C(add ssl crt-list)
    for a new name; C(set ssl cert) and C(commit ssl cert) for a name HAProxy already holds.
    HAProxy is never reloaded, and no connection is dropped.
  - Before HAProxy is touched the bundle is checked; it must parse, its key must match its
    leaf, the leaf must be valid now, the chain must be in order, O(expected_domains) must be
    covered, and the command with its payload must fit HAProxy's buffer (O(bufsize)).
  - Idempotent; when HAProxy already serves the same leaf (serial and SHA-1 fingerprint) and
    chain, nothing is sent and the result is C(changed=false).
  - Never replaces a certificate with an older one for the same DNS names, so that two runs
    that deploy one name at once (two fleet C(renew) runs, each with its own order) end on the
    same certificate in either order. Older means an earlier notBefore; on a tie an earlier
    notAfter, then a lower serial. When HAProxy already serves a newer one, it is kept; nothing
    is written or sent, the result is V(unchanged) and RV(certificates[].reason) says so. When
    the file at O(path) holds a newer one, that file is deployed instead of the bundle given.
    To go back to an older certificate, remove the newer one first (O(state=absent)).
  - The check, the write and the push hold the run lock of the certificate's directory (a
    dotfile there, shared with M(tlsops.haproxy_acme.acme_stateless_order) and the host's
    renewal job), waiting up to 300 seconds for another run to finish.
  - Before anything is written, every socket is asked (read-only) for its crt-lists and what it
    holds. A socket path that is no socket, a socket below C(level admin), an O(crt_list) HAProxy
    does not have, or a new certificate outside every directory HAProxy loads fails the
    certificate with nothing written or sent. A socket nobody answers on (HAProxy down) does not
    stop the write; the module fails saying so.
  - A certificate HAProxy holds but does not serve (status C(Unused), for example after a
    C(new ssl cert) with no C(add ssl crt-list)) is attached to its crt-list. After every change
    the module reads C(show ssl cert) back and requires the new serial and the status C(Used).
  - HAProxy allows one certificate transaction per process. A transaction opened by another
    client is waited for up to O(busy_timeout), then reported, or aborted when
    O(abort_foreign_transaction=true). Any failure inside a transaction of this module sends
    C(abort ssl cert); a store it created for a certificate that then failed is deleted again.
  - With O(write_file=true) the bundle is also written to O(path) atomically (a dotfile in the
    same directory renamed over the old file, which HAProxy's directory loader never reads), so
    a restart serves the same certificate. The file is written before the Runtime API is used;
    if HAProxy is down the file is still written and the module fails saying so.
  - O(state=absent) sends C(del ssl crt-list) and C(del ssl cert), and removes the file.
  - Many certificates (O(certificates)) go over one connection per socket. One certificate
    failing does not stop the others; the module fails at the end if any failed.
  - HAProxy restarted or reloaded during the push is handled. A lost connection is opened again
    for up to O(timeout) seconds; after the last certificate a new connection checks that the same
    process still answers (after a reload the old connection stays with the old, stopping worker).
    When another process answers, it loaded the files just written; every certificate is read
    again from it and pushed where it differs, at most three times in all. A certificate that
    could not be pushed is reported failed, with its file written.
author:
  - tlsops.haproxy_acme contributors (@tlsops)
requirements:
  - cryptography >= 38 on the managed host, for O(state=present) (the bundle checks); removing
    certificates needs none
extends_documentation_fragment:
  - tlsops.haproxy_acme.attributes
  - tlsops.haproxy_acme.attributes.actiongroup_haproxy
options:
  socket:
    description:
      - HAProxy's stats socket, at C(level admin). A unix socket path or C(host:port) for a TCP
        stats socket (HAProxy's C(ipv4@) and C(unix@) prefixes are accepted).
      - A list when several HAProxy processes run on the host; each gets the same certificates.
        A single string is read as a list of one. M(tlsops.haproxy_acme.haproxy_runtime_cert_info)
        takes the same type, so one value in C(module_defaults) for the
        C(group/tlsops.haproxy_acme.haproxy) action group serves both modules.
      - A unix path that exists but is no socket (a regular file, a directory) is refused before
        anything is written.
    type: list
    elements: str
    default: [/run/haproxy/admin.sock]
  path:
    description:
      - The certificate's name in HAProxy, which is also its file. For a C(crt <dir>/) bind line this
        must be C(<dir>/<file>), for example C(/etc/haproxy/certs/example.com.pem).
      - Must be absolute. A name with whitespace, control characters, C(;) or C(\) is refused
        before anything is sent.
      - Mutually exclusive with O(certificates).
    type: str
  pem_src:
    description:
      - A PEM bundle file on the managed host to push; leaf first, then the chain, then the key.
      - When neither O(pem_src) nor O(pem_content) is given, the file at O(path) itself is pushed.
    type: path
  pem_content:
    description:
      - The PEM bundle itself, for example from a lookup on the controller.
    type: str
  crt_list:
    description:
      - The crt-list (or C(crt) directory without its trailing slash) that serves the certificate.
        A new or C(Unused) certificate is added to it with C(add ssl crt-list).
      - Must be one HAProxy lists in C(show ssl crt-list); it is checked before anything is written.
        A trailing slash is dropped, as HAProxy names a C(crt <dir>/) bind by the directory alone.
      - Defaults to the directory of O(path), which is what a C(crt <dir>/) bind line uses.
      - When given, a certificate missing from this crt-list is added to it even when it is
        C(Used) elsewhere.
      - For a crt-list file, HAProxy changes the list in memory only; add the line to the file
        yourself so that it survives a restart.
      - With O(certificates), the default for entries that do not set their own.
    type: str
  state:
    description:
      - V(present) makes HAProxy serve the bundle; V(absent) removes the certificate from its
        crt-list, from HAProxy and (with O(write_file)) from disk.
    type: str
    choices: [present, absent]
    default: present
  expected_domains:
    description:
      - Names the leaf must cover (a wildcard covers one label). A bundle that does not is refused.
      - With O(certificates), the default for entries that do not set their own.
    type: list
    elements: str
  certificates:
    description:
      - Several certificates in one call, over one connection per socket.
    type: list
    elements: dict
    suboptions:
      path:
        description: As O(path).
        type: str
        required: true
      pem_src:
        description: As O(pem_src).
        type: path
      pem_content:
        description: As O(pem_content).
        type: str
      crt_list:
        description: As O(crt_list).
        type: str
      state:
        description: As O(state).
        type: str
        choices: [present, absent]
        default: present
      expected_domains:
        description: As O(expected_domains).
        type: list
        elements: str
  write_file:
    description:
      - Also write the bundle to O(path) (or remove it, for O(state=absent)), so that HAProxy
        loads the same certificate when it starts.
      - The file holds the PEM blocks exactly as they were sent to HAProxy.
    type: bool
    default: true
  owner:
    description:
      - Owner of the written file. By default the owner of the file being replaced is kept.
    type: str
  group:
    description:
      - Group of the written file, for example C(haproxy). By default the group of the file being
        replaced is kept.
    type: str
  mode:
    description:
      - Mode of the written file, as an octal string.
    type: raw
    default: '0640'
  timeout:
    description:
      - Seconds to wait for the socket to connect and for each reply, and for the TLS handshake of
        O(verify_address).
      - Also how long HAProxy may take to come back when the connection is lost during the push
        (HAProxy restarted).
    type: float
    default: 10
  busy_timeout:
    description:
      - Seconds to wait while another client's certificate transaction is open or HAProxy's
        certificate lock is held, before reporting it (or aborting it, see
        O(abort_foreign_transaction)).
    type: float
    default: 10
  abort_foreign_transaction:
    description:
      - Abort a certificate transaction opened by another client that is still open after
        O(busy_timeout), for example one left by a client that died.
    type: bool
    default: false
  verify_address:
    description:
      - C(host:port) of an HTTPS listener of this HAProxy. After the push, a TLS handshake with
        the certificate's first DNS name as SNI must return the new serial.
      - A wildcard name is asked as C(tlsops-verify.<domain>).
      - A certificate for IP addresses only is asked for without SNI (RFC 6066 allows no address
        there), so give the address bind that serves it by default (the haproxy role's
        C(haproxy_ip_certificates)).
    type: str
  bufsize:
    description:
      - HAProxy's C(tune.bufsize). A command and its payload must fit in it (up to HAProxy 3.3);
        a bundle that does not is refused with a message instead of HAProxy dropping the connection.
      - Raise it together with C(tune.bufsize) in HAProxy's C(global) section.
    type: int
    default: 16384
  as_json:
    description:
      - Return RV(certificates) as one JSON text, RV(certificates_json), instead of a list. A playbook
        that reads the results of many hosts at once through C(hostvars) (the fleet's C(renew)) handles
        one string per host far faster than hundreds of entries, each a value Ansible copies, scrubs
        for secrets and templates. C(from_json) turns it back into the list.
    type: bool
    default: false
    version_added: 0.2.0
notes:
  - Needs a stats socket at C(level admin). Debian's HAProxy package has one at
    C(/run/haproxy/admin.sock), mode C(660), group C(haproxy).
  - O(pem_src) is read on the managed host. To push a bundle from the controller use
    O(pem_content) with a lookup, as in the examples.
  - Key material never appears in results, diffs or logs; O(pem_content) is C(no_log).
attributes:
  check_mode:
    support: full
    details:
      - Check mode reads C(show ssl cert) from HAProxy and compares the file on disk, then reports
        what would change; nothing is written or sent beyond read-only commands.
  diff_mode:
    support: full
    details:
      - The diff shows serial, notAfter, SANs and status before and after; never key bytes.
  idempotent:
    support: full
seealso:
  - module: tlsops.haproxy_acme.haproxy_runtime_cert_info
  - module: tlsops.haproxy_acme.acme_stateless_order
  - name: HAProxy management guide, section 9.3
    description: The Runtime API commands this module uses (C(set ssl cert), C(commit ssl cert), C(add ssl crt-list)).
    link: https://docs.haproxy.org/2.6/management.html#9.3
"""

EXAMPLES = r"""
- name: Serve the bundle the ACME module wrote (the file at path itself)
  tlsops.haproxy_acme.haproxy_runtime_cert:
    path: /etc/haproxy/certs/example.com.pem

- name: Push a bundle from the controller to a node, also writing it to disk
  tlsops.haproxy_acme.haproxy_runtime_cert:
    socket: /run/haproxy/admin.sock
    path: /etc/haproxy/certs/example.com.pem
    pem_content: "{{ lookup('ansible.builtin.file', 'certs/example.com.pem') }}"
    expected_domains: [example.com, www.example.com]
    owner: acme
    group: haproxy
    verify_address: 127.0.0.1:443

- name: Many certificates in one call, over one connection
  tlsops.haproxy_acme.haproxy_runtime_cert:
    certificates:
      - path: /etc/haproxy/certs/shop.example.org.pem
        pem_content: "{{ lookup('ansible.builtin.file', 'certs/shop.example.org.pem') }}"
      - path: /etc/haproxy/certs/blog.example.org.pem
        pem_content: "{{ lookup('ansible.builtin.file', 'certs/blog.example.org.pem') }}"
      - path: /etc/haproxy/certs/old.example.org.pem
        state: absent
    group: haproxy
  register: deployed

- name: Two HAProxy processes on one host, a TCP stats socket for the second
  tlsops.haproxy_acme.haproxy_runtime_cert:
    socket:
      - /run/haproxy/admin.sock
      - 127.0.0.1:9999
    path: /etc/haproxy/certs/example.com.pem

- name: Take over from a client that died inside a transaction
  tlsops.haproxy_acme.haproxy_runtime_cert:
    path: /etc/haproxy/certs/example.com.pem
    busy_timeout: 30
    abort_foreign_transaction: true

- name: Stop serving a certificate and delete its file
  tlsops.haproxy_acme.haproxy_runtime_cert:
    path: /etc/haproxy/certs/old.example.com.pem
    state: absent
"""

RETURN = r"""
certificates:
  description: One entry per certificate, in the order asked.
  returned: success, and when a certificate failed; not with O(as_json)
  type: list
  elements: dict
  contains:
    path:
      description: The certificate's name in HAProxy and its file.
      type: str
      returned: always
      sample: /etc/haproxy/certs/example.com.pem
    state:
      description: The state asked for.
      type: str
      returned: always
      sample: present
    action:
      description:
        - V(created) (HAProxy did not hold it, or held an empty store), V(updated) (new serial or
          chain, or attached to its crt-list), V(unchanged), V(removed), or V(failed).
        - With several sockets, the strongest action among them.
      type: str
      returned: always
      sample: updated
    reason:
      description:
        - Why, in words; the error message when it failed.
        - When HAProxy serves a newer certificate for the same names, it is kept, and the reason
          names its serial and notBefore, for example V(a newer certificate (serial 0A1B..., issued
          2026-01-01T00:00:00Z\) is already served on /run/haproxy/admin.sock; kept).
        - When the file at RV(certificates[].path) held a newer one, that file was deployed instead
          of the bundle given, and the reason begins with V(a newer certificate) and ends with what
          HAProxy did.
      type: str
      returned: always
      sample: new serial
    changed:
      description: Whether HAProxy or the file changed (or would, in check mode).
      type: bool
      returned: always
      sample: true
    file_changed:
      description: Whether the file at RV(certificates[].path) was written or removed (or would be).
      type: bool
      returned: always
      sample: true
    crt_list:
      description: The crt-list the certificate is attached to.
      type: str
      returned: always
      sample: /etc/haproxy/certs
    status:
      description: HAProxy's status for it after the run (V(Used), V(Unused), V(Absent)); null when it failed.
      type: str
      returned: always
      sample: Used
    serial:
      description: Serial of the leaf (HAProxy's form, upper-case hex).
      type: str
      returned: when state is present and the bundle parsed
      sample: 04A3F1C2D5E6B7A8091A2B3C4D5E6F708192
    not_before:
      description: Start of the leaf's validity, ISO 8601 UTC.
      type: str
      returned: when state is present and the bundle parsed
      sample: "2025-01-01T00:00:00Z"
    not_after:
      description: End of the leaf's validity, ISO 8601 UTC.
      type: str
      returned: when state is present and the bundle parsed
      sample: "2025-03-31T23:59:59Z"
    domains:
      description: DNS names of the leaf.
      type: list
      elements: str
      returned: when state is present and the bundle parsed
      sample: [example.com, www.example.com]
    sha1_fingerprint:
      description: SHA-1 fingerprint of the leaf (HAProxy's identifier, upper-case hex).
      type: str
      returned: when state is present and the bundle parsed
      sample: 417A11CAE25F607B24F638B4A8AEE51D1E211477
    key_type:
      description: Key type of the leaf.
      type: str
      returned: when state is present and the bundle parsed
      sample: ec256
    sockets:
      description: What happened on each socket, in the order of O(socket).
      type: list
      elements: dict
      returned: always
      sample: [{socket: /run/haproxy/admin.sock, action: updated, reason: new serial, status: Used}]
      contains:
        socket:
          description: The socket.
          type: str
          returned: always
          sample: /run/haproxy/admin.sock
        action:
          description: As RV(certificates[].action), on this socket.
          type: str
          returned: always
          sample: updated
        reason:
          description: Why, in words; the error when it failed on this socket.
          type: str
          returned: always
          sample: new serial
        status:
          description: HAProxy's status for the certificate on this socket after the run.
          type: str
          returned: unless the certificate failed on this socket
          sample: Used
    verified:
      description: Whether the TLS handshake of O(verify_address) returned the new serial.
      type: bool
      returned: when O(verify_address) is set and the certificate was pushed
      sample: true
    msg:
      description: The error, when this certificate failed.
      type: str
      returned: when it failed
      sample: "HAProxy's stats socket /run/haproxy/admin.sock does not exist: is HAProxy running?"
certificates_json:
  description: With O(as_json), RV(certificates) as one compact JSON text (keys sorted).
  returned: with O(as_json), on success and when a certificate failed
  type: str
  sample: '[{"action":"updated","changed":true,"path":"/etc/haproxy/certs/example.com.pem"}]'
process:
  description:
    - The HAProxy process that answered on the (first) socket at the end of the run, after the
      last certificate; after a reload during the push, the new one (which was sent every
      certificate again). Null when the socket could not be reached, or no certificate was left to deploy
      once the bundles were checked.
    - Compare it with RV(tlsops.haproxy_acme.haproxy_runtime_cert_info#module:process) read before
      to tell whether something reloaded HAProxy meanwhile; the fleet's C(renew) does.
  returned: success, and when a certificate failed
  type: dict
  sample: {pid: 4711}
  contains:
    pid:
      description: Its PID (as seen in its own PID namespace).
      type: int
      returned: always
      sample: 4711
aborted_transactions:
  description: Certificate transactions of other clients this run aborted.
  returned: success, and when a certificate failed
  type: list
  elements: str
  sample: []
path:
  description: RV(certificates[].path) of the only certificate, when called without O(certificates).
  returned: with O(path), whenever RV(certificates) is
  type: str
  sample: /etc/haproxy/certs/example.com.pem
action:
  description: RV(certificates[].action) of the only certificate.
  returned: with O(path), whenever RV(certificates) is
  type: str
  sample: created
reason:
  description: RV(certificates[].reason) of the only certificate.
  returned: with O(path), whenever RV(certificates) is
  type: str
  sample: new certificate
serial:
  description: RV(certificates[].serial) of the only certificate.
  returned: with O(path) and O(state=present), when the bundle parsed
  type: str
  sample: 04A3F1C2D5E6B7A8091A2B3C4D5E6F708192
not_before:
  description: RV(certificates[].not_before) of the only certificate.
  returned: with O(path) and O(state=present), when the bundle parsed
  type: str
  sample: "2025-01-01T00:00:00Z"
not_after:
  description: RV(certificates[].not_after) of the only certificate.
  returned: with O(path) and O(state=present), when the bundle parsed
  type: str
  sample: "2025-03-31T23:59:59Z"
domains:
  description: RV(certificates[].domains) of the only certificate.
  returned: with O(path) and O(state=present), when the bundle parsed
  type: list
  elements: str
  sample: [example.com]
sha1_fingerprint:
  description: RV(certificates[].sha1_fingerprint) of the only certificate.
  returned: with O(path) and O(state=present), when the bundle parsed
  type: str
  sample: 417A11CAE25F607B24F638B4A8AEE51D1E211477
status:
  description: RV(certificates[].status) of the only certificate.
  returned: with O(path), whenever RV(certificates) is
  type: str
  sample: Used
file_changed:
  description: RV(certificates[].file_changed) of the only certificate.
  returned: with O(path), whenever RV(certificates) is
  type: bool
  sample: true
crt_list:
  description: RV(certificates[].crt_list) of the only certificate.
  returned: with O(path), whenever RV(certificates) is
  type: str
  sample: /etc/haproxy/certs
sockets:
  description: RV(certificates[].sockets) of the only certificate.
  returned: with O(path), whenever RV(certificates) is
  type: list
  elements: dict
  sample: [{socket: /run/haproxy/admin.sock, action: created, reason: new certificate, status: Used}]
verified:
  description: RV(certificates[].verified) of the only certificate.
  returned: with O(path) and O(verify_address), when the certificate was pushed
  type: bool
  sample: true
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
"""

import typing as t

from ansible.module_utils import basic

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import cert_run
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.module_args import (
    CERT_MUTUALLY_EXCLUSIVE,
    CERT_REQUIRED_ONE_OF,
    cert_argument_spec,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._index import RENEWAL_KIND
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._module import RunResult, run_module


def _facts_of_checked(data: bytes) -> dict[str, t.Any]:
    """The renewal rule's facts of a bundle just written (its key and chain checked already)."""
    from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import renewal  # noqa: PLC0415 - only when a bundle is written

    return renewal.facts_of_checked(data)


def _run(params: t.Mapping[str, t.Any], check_mode: bool = False) -> RunResult:
    # What the renewal rule reads of each bundle written goes into the directory's index, so
    # that the next haproxy_runtime_cert_info with bundle_facts (the fleet's renew) finds it
    # there instead of parsing every file this run replaced.
    return cert_run.run(params, check_mode, facts_source=(RENEWAL_KIND, _facts_of_checked))


def main() -> None:
    run_module(
        basic, _run, missing=cert_run.missing_library,
        argument_spec=cert_argument_spec(),
        mutually_exclusive=CERT_MUTUALLY_EXCLUSIVE,
        required_one_of=CERT_REQUIRED_ONE_OF,
        supports_check_mode=True,
    )


if __name__ == "__main__":
    main()
