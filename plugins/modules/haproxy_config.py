#!/usr/bin/python
# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: haproxy_config
short_description: Write HAProxy's directories, maps and haproxy.cfg in one run, haproxy.cfg checked before it is in place
version_added: 0.2.0
description:
  - Ensures directories, writes the files C(haproxy.cfg) reads (maps), then writes C(haproxy.cfg), in that
    order, in one module run. The P(tlsops.haproxy_acme.haproxy#role) role uses it for its whole
    configuration; on a fleet each task is a module start on every node, and this one replaces four.
  - Every file is written atomically (a dotfile in the same directory, created with its final mode,
    renamed over the old file), and only when its content, mode or ownership differ.
  - The new C(haproxy.cfg) is written to a dotfile beside the old one and checked with O(validate)
    (C(haproxy -c -f)) there, after the directories and maps it names are in place; only a
    configuration that passes replaces the old one. One that fails fails the module with HAProxy's
    output, the old C(haproxy.cfg) stays, and the running HAProxy is not touched.
  - The module never reloads HAProxy. Notify a reload handler on its change, as the role does.
  - Every path, mode, owner and group is checked before anything is written.
author:
  - tlsops.haproxy_acme contributors (@tlsops)
requirements:
  - Only the Python standard library on the managed host
extends_documentation_fragment:
  - tlsops.haproxy_acme.attributes
  - tlsops.haproxy_acme.attributes.actiongroup_collection
options:
  directories:
    description:
      - Directories to ensure, first. Missing parents are created with mode C(0755).
      - A path that exists and is not a directory fails the module; it is never replaced.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The directory, an absolute path.
        type: path
        required: true
      mode:
        description: Its mode, an octal string such as V('2770').
        type: raw
        default: "0755"
      owner:
        description: Its owner; unchanged when not given.
        type: str
      group:
        description: Its group; unchanged when not given.
        type: str
  files:
    description:
      - Files to write after the directories and before O(config), such as the maps C(haproxy.cfg)
        reads (C(haproxy -c) opens them).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The file, an absolute path in a directory that exists or is in O(directories).
        type: path
        required: true
      content:
        description: What the file holds.
        type: str
        required: true
      mode:
        description: Its mode, an octal string.
        type: raw
        default: "0644"
      owner:
        description: Its owner; unchanged when not given.
        type: str
      group:
        description: Its group; unchanged when not given.
        type: str
      force:
        description:
          - With V(false), a file that exists is left as it is (content, mode and ownership), as
            C(force=false) of M(ansible.builtin.copy) does. The role writes the account thumbprint map so,
            when it is missing, for C(haproxy -c); M(tlsops.haproxy_acme.haproxy_acme_thumbprint) then owns it.
        type: bool
        default: true
  config:
    description:
      - C(haproxy.cfg), written last and only when it passes O(validate).
    type: dict
    suboptions:
      path:
        description: The configuration file.
        type: path
        required: true
      content:
        description: The configuration, as rendered on the controller (the role uses the C(template) lookup).
        type: str
        required: true
      mode:
        description: Its mode, an octal string.
        type: raw
        default: "0640"
      owner:
        description: Its owner; unchanged when not given.
        type: str
      group:
        description: Its group; unchanged when not given.
        type: str
      backup:
        description:
          - Keep a copy of the old file beside it before it is replaced, named as C(backup=true) of
            M(ansible.builtin.template) names one (C(<path>.<pid>.<date>@<time>~)).
        type: bool
        default: false
  validate:
    description:
      - The command that checks the new O(config) before it replaces the old one; C(%s) is the new file's
        temporary path. Split as a shell would split it, but run without a shell.
      - An empty string checks nothing.
    type: str
    default: /usr/sbin/haproxy -c -f %s
attributes:
  check_mode:
    support: full
    details:
      - In check mode the module reads what is there and reports what it would do; nothing is written
        and O(validate) is not run.
  diff_mode:
    support: full
    details:
      - The content of each file before and after, and the mode and state of each directory.
  idempotent:
    support: full
seealso:
  - module: tlsops.haproxy_acme.haproxy_acme_thumbprint
  - module: ansible.builtin.template
  - name: HAProxy management guide, checking a configuration
    description: C(haproxy -c) reads the configuration and every file it names, and starts nothing.
    link: https://docs.haproxy.org/2.6/management.html#2
"""

EXAMPLES = r"""
- name: Write HAProxy's configuration, checked before it is in place
  tlsops.haproxy_acme.haproxy_config:
    directories:
      - {path: /etc/haproxy/certs, owner: haproxy, group: haproxy, mode: "2770"}
      - {path: /etc/haproxy/maps, owner: root, group: haproxy, mode: "0755"}
    files:
      - path: /etc/haproxy/maps/hosts.map
        content: "{{ lookup('ansible.builtin.template', 'hosts.map.j2') }}"
        owner: root
        group: haproxy
    config:
      path: /etc/haproxy/haproxy.cfg
      content: "{{ lookup('ansible.builtin.template', 'haproxy.cfg.j2') }}"
      owner: root
      group: haproxy
      backup: true
  notify: Reload HAProxy

- name: Another HAProxy binary checks it
  tlsops.haproxy_acme.haproxy_config:
    config:
      path: /etc/haproxy-internal/haproxy.cfg
      content: "{{ internal_config }}"
    validate: /opt/haproxy-3.2/sbin/haproxy -c -f %s
"""

RETURN = r"""
directories:
  description: What was done with each directory of O(directories), in their order.
  returned: success, and when the new configuration fails its check
  type: list
  elements: dict
  contains:
    path:
      description: The directory.
      type: str
      returned: always
      sample: /etc/haproxy/certs
    action:
      description:
        - V(created), V(attributes) (its mode or ownership was set) or V(unchanged); in check mode what
          would be done.
      type: str
      returned: always
      sample: unchanged
files:
  description: What was done with each file of O(files), in their order.
  returned: success, and when the new configuration fails its check
  type: list
  elements: dict
  contains:
    path:
      description: The file.
      type: str
      returned: always
      sample: /etc/haproxy/maps/hosts.map
    action:
      description:
        - V(created), V(updated) (its content), V(attributes) (its mode or ownership), V(unchanged), or
          V(kept) (it exists and O(files[].force=false)); in check mode what would be done.
      type: str
      returned: always
      sample: updated
config:
  description: What was done with O(config).
  returned: when O(config) is given, on success and when the new configuration fails its check
  type: dict
  contains:
    path:
      description: The configuration file.
      type: str
      returned: always
      sample: /etc/haproxy/haproxy.cfg
    action:
      description:
        - As RV(files[].action), or V(failed) when the new configuration failed O(validate) (the old one is kept).
      type: str
      returned: always
      sample: unchanged
    backup_file:
      description: The copy of the old file, with O(config.backup=true).
      type: str
      returned: when the file was replaced and O(config.backup=true)
      sample: /etc/haproxy/haproxy.cfg.2141.2026-12-02@10:22:03~
entry:
  description: The path at fault, when the module fails on one before anything is written (a bad mode, a file where a
    directory is asked).
  returned: when the module fails on a path
  type: str
  sample: /etc/haproxy/maps
validate:
  description: The check command that failed (from O(validate)).
  returned: when the new configuration fails its check
  type: str
  sample: /usr/sbin/haproxy -c -f %s
rc:
  description: The check command's exit status.
  returned: when the new configuration fails its check
  type: int
  sample: 1
"""

from ansible.module_utils import basic

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import config
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._module import run_module


def main() -> None:
    run_module(basic, config.run, argument_spec=config.argument_spec(), supports_check_mode=True)


if __name__ == "__main__":
    main()
