# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # The attributes every module of the collection documents. Each module sets its own
    # `support` and `details` for check_mode, diff_mode and idempotent.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check mode and return the changed status it predicts, without modifying the target.
  diff_mode:
    description: Returns details on what changed (or would change, in check mode) in diff mode.
  idempotent:
    description: A second run with the same options reports no change and changes nothing.
  platform:
    description: Target systems the module runs on.
    support: full
    platforms: posix
requirements:
  - Python 3.8 or newer on the host that runs the module
"""

    # meta/runtime.yml: the ACME modules are in the groups acme and haproxy_acme.
    ACTIONGROUP_ACME = r"""
options: {}
attributes:
  action_group:
    description:
      - Use C(group/tlsops.haproxy_acme.acme) (the ACME modules) or C(group/tlsops.haproxy_acme.haproxy_acme)
        (every module of the collection) in C(module_defaults) to set defaults for this module.
      - A module of the group fails on an option set there that it does not take.
    support: full
    membership:
      - tlsops.haproxy_acme.acme
      - tlsops.haproxy_acme.haproxy_acme
"""

    # meta/runtime.yml: the Runtime API modules are in the groups haproxy and haproxy_acme.
    ACTIONGROUP_HAPROXY = r"""
options: {}
attributes:
  action_group:
    description:
      - Use C(group/tlsops.haproxy_acme.haproxy) (the HAProxy Runtime API modules) or
        C(group/tlsops.haproxy_acme.haproxy_acme) (every module of the collection) in C(module_defaults)
        to set defaults for this module.
      - A module of the group fails on an option set there that it does not take.
    support: full
    membership:
      - tlsops.haproxy_acme.haproxy
      - tlsops.haproxy_acme.haproxy_acme
"""

    # meta/runtime.yml: a module that is in the group haproxy_acme alone.
    ACTIONGROUP_COLLECTION = r"""
options: {}
attributes:
  action_group:
    description:
      - Use C(group/tlsops.haproxy_acme.haproxy_acme) (every module of the collection) in C(module_defaults) to
        set defaults for this module.
      - A module of the group fails on an option set there that it does not take.
    support: full
    membership:
      - tlsops.haproxy_acme.haproxy_acme
"""
