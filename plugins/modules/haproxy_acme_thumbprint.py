#!/usr/bin/python
# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: haproxy_acme_thumbprint
short_description: Change the ACME thumbprint a running HAProxy answers challenges with, without a reload
version_added: 0.2.0
description:
  - The challenge rule of the P(tlsops.haproxy_acme.haproxy#role) role answers an http-01 challenge with
    C(<token>.<thumbprint>) (RFC 8555 section 8.3), the thumbprint read from a map file
    (C(%[str(thumbprint),map(<file>)])). This module sets that thumbprint in HAProxy's memory over
    the Runtime API (C(set map), or C(add map) when the map has no entry yet) and in the file,
    which is written atomically (a dotfile in the same directory renamed over it), so that a
    restart answers the same. HAProxy is never reloaded.
  - Used after an account key rollover (M(tlsops.haproxy_acme.acme_account) with
    O(tlsops.haproxy_acme.acme_account#module:new_account_key_path)), or when a host moves to
    another ACME account.
  - Every socket is read first (C(show map), C(show map <file>)). A socket nobody answers on, or
    whose HAProxy holds no map of that file name (its running configuration does not read it),
    fails the module before anything is written, unless O(require_runtime=false).
  - After a change the module reads the map back and requires the new value.
  - Idempotent; when HAProxy and the file already hold the thumbprint nothing is sent or written.
author:
  - tlsops.haproxy_acme contributors (@tlsops)
requirements:
  - Only the Python standard library on the managed host (no cryptography, no requests)
extends_documentation_fragment:
  - tlsops.haproxy_acme.attributes
  - tlsops.haproxy_acme.attributes.actiongroup_haproxy
options:
  thumbprint:
    description:
      - The ACME account key thumbprint (RFC 7638, 43 base64url characters), as
        M(tlsops.haproxy_acme.acme_account) returns it in
        RV(tlsops.haproxy_acme.acme_account#module:thumbprint).
    type: str
    required: true
  path:
    description:
      - The map file, exactly as C(haproxy.cfg) names it in the challenge rule; HAProxy's Runtime API
        names the map by it.
      - The default is the file of the P(tlsops.haproxy_acme.haproxy#role) role with its default
        C(haproxy_maps_dir).
      - An absolute path of letters, digits and C(. _ - + @ /) only.
    type: str
    default: /etc/haproxy/maps/acme-thumbprint.map
  key:
    description:
      - The map key whose value is the thumbprint; the role's challenge rule looks up V(thumbprint).
    type: str
    default: thumbprint
  socket:
    description:
      - HAProxy's stats socket, a unix socket path or C(host:port) (HAProxy's C(ipv4@) and C(unix@)
        prefixes are accepted). C(set map) needs C(level operator) or C(admin).
      - A list when several HAProxy processes run on the host; each gets the thumbprint.
    type: list
    elements: str
    default: [/run/haproxy/admin.sock]
  timeout:
    description:
      - Seconds to wait for each socket to connect and for each reply.
    type: float
    default: 10
  require_runtime:
    description:
      - With V(true), every socket must answer and its HAProxy must hold the map; otherwise the module
        fails before anything is written.
      - With V(false), for a configuration being rolled out (the role uses this), the file is
        written, and a socket nobody answers on (HAProxy not started yet) or whose HAProxy does
        not read the map yet (it still runs a configuration from before the map) is skipped and
        reported in RV(sockets[].action); HAProxy reads the file when it starts or reloads.
    type: bool
    default: true
  write_file:
    description:
      - Also write the thumbprint into O(path). Other lines of the file are kept; a second entry for
        O(key) is dropped, so that HAProxy has no choice to make.
      - With V(false) only HAProxy's memory changes, and a restart answers with the old thumbprint.
    type: bool
    default: true
  owner:
    description: Owner of the map file.
    type: str
  group:
    description: Group of the map file.
    type: str
  mode:
    description: Mode of the map file, an octal string.
    type: raw
    default: "0644"
attributes:
  check_mode:
    support: full
    details:
      - In check mode the sockets and the file are read, nothing is sent that changes HAProxy and nothing is written.
  diff_mode:
    support: full
    details:
      - The map entry before and after.
  idempotent:
    support: full
seealso:
  - module: tlsops.haproxy_acme.acme_account
  - module: tlsops.haproxy_acme.haproxy_runtime_cert
  - name: HAProxy management guide, C(set map)
    description: The Runtime API command used here.
    link: https://docs.haproxy.org/2.6/management.html#9.3-set%20map
  - name: RFC 8555 section 8.3 (HTTP challenge)
    description: The key authorization HAProxy answers with.
    link: https://www.rfc-editor.org/rfc/rfc8555#section-8.3
"""

EXAMPLES = r"""
- name: Roll the account over to a new key
  tlsops.haproxy_acme.acme_account:
    directory: letsencrypt
    account_key_path: /var/lib/acme/account/account.key
    new_account_key_path: /var/lib/acme/account/account.key.next
  register: rollover

- name: Answer challenges with the new thumbprint, without a reload
  tlsops.haproxy_acme.haproxy_acme_thumbprint:
    thumbprint: "{{ rollover.thumbprint }}"

- name: Two HAProxy processes on one host, a map file of your own
  tlsops.haproxy_acme.haproxy_acme_thumbprint:
    thumbprint: "{{ rollover.thumbprint }}"
    path: /etc/haproxy/acme.map
    socket:
      - /run/haproxy/admin.sock
      - /run/haproxy-internal/admin.sock
    owner: root
    group: haproxy

- name: Write the map before HAProxy starts with a configuration that reads it
  tlsops.haproxy_acme.haproxy_acme_thumbprint:
    thumbprint: "{{ account.thumbprint }}"
    require_runtime: false
"""

RETURN = r"""
thumbprint:
  description:
    - The thumbprint HAProxy answers with now (or would, in check mode).
    - When the module fails on O(thumbprint), the value refused.
  returned: success, when a socket failed, and when the module fails on O(thumbprint)
  type: str
  sample: lCufto4sDRTHdmWL0EugFywGV54hBCuTTXvwifi65R4
previous_thumbprint:
  description:
    - The value HAProxy held before (from the first socket that holds the map), else the file's; null
      when neither had one.
  returned: success, and when a socket failed
  type: str
  sample: 8mZ2VbyeS-gJjcrDQgVRBfkW0fh1YWcKDjkXkN0nmhI
path:
  description: The map file.
  returned: success, when a socket failed, and when the module fails on the map
  type: str
  sample: /etc/haproxy/maps/acme-thumbprint.map
key:
  description: The map key.
  returned: success, and when a socket failed
  type: str
  sample: thumbprint
file_changed:
  description: Whether the file was written (or would be, in check mode).
  returned: success, and when a socket failed
  type: bool
  sample: true
sockets:
  description: What happened on each socket.
  returned: success, and when a socket failed
  type: list
  elements: dict
  contains:
    socket:
      description: The socket.
      type: str
      returned: always
      sample: /run/haproxy/admin.sock
    action:
      description:
        - V(updated) (C(set map)), V(added) (C(add map), the map had no entry), V(unchanged), V(failed),
          and with O(require_runtime=false) V(not_loaded) (HAProxy does not read the map) or
          V(unreachable) (nobody answers on the socket).
        - In check mode, what would be done.
      type: str
      returned: always
      sample: updated
    previous:
      description: The value HAProxy held before; null when it held none.
      type: str
      returned: always
      sample: 8mZ2VbyeS-gJjcrDQgVRBfkW0fh1YWcKDjkXkN0nmhI
    reason:
      description: Why, in words; the error when it failed.
      type: str
      returned: always
      sample: new value
uid:
  description:
    - Numeric owner of the map file RV(path) after the run (before it, in check mode). Ansible's C(AnsibleModule) adds this
      and the file attributes below to every result with a C(path) that exists.
  returned: when the map file RV(path) exists
  type: int
  sample: 0
gid:
  description: Numeric group of the map file RV(path).
  returned: when the map file RV(path) exists
  type: int
  sample: 118
owner:
  description: Owner of the map file RV(path) (the user name); not O(owner).
  returned: when the map file RV(path) exists
  type: str
  sample: acme
group:
  description: Group of the map file RV(path) (the group name); not O(group).
  returned: when the map file RV(path) exists
  type: str
  sample: haproxy
mode:
  description: Mode of the map file RV(path), an octal string; not O(mode).
  returned: when the map file RV(path) exists
  type: str
  sample: "0640"
state:
  description: What the path is, V(file) (or V(link), V(hard) for a file with several links, V(directory)).
  returned: when the map file RV(path) exists
  type: str
  sample: file
size:
  description: Size of the map file RV(path) in bytes.
  returned: when the map file RV(path) exists
  type: int
  sample: 5268
secontext:
  description: SELinux context of the map file RV(path).
  returned: when the map file RV(path) exists, on a host with SELinux enabled
  type: str
  sample: system_u:object_r:cert_t:s0
socket:
  description: The socket that failed before anything was written (with O(require_runtime=true)).
  returned: when the module fails on a socket before anything is written
  type: str
  sample: /run/haproxy/admin.sock
"""

from ansible.module_utils import basic

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import maps
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._module import run_module


def main() -> None:
    run_module(basic, maps.run, argument_spec=maps.thumbprint_argument_spec(), supports_check_mode=True)


if __name__ == "__main__":
    main()
