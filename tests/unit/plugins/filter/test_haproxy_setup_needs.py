# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The haproxy_setup_needs filter: the probe's decision (tests/unit/plugins/module_utils/test_probe.py), with
Ansible's booleans as the role passes them."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.tlsops.haproxy_acme.plugins.filter.haproxy_setup_needs import haproxy_setup_needs
from tests.unit.plugins.module_utils.test_probe import DONE


def test_filter_reads_booleans_as_ansible_does() -> None:
    needs = haproxy_setup_needs(DONE, ["haproxy"], manage_package="false", package_state="latest",
                                service_enabled="yes")
    assert needs == {"install": False, "service": False, "version": "2.6.12"}


def test_filter_refuses_what_is_no_probe_output() -> None:
    with pytest.raises(AnsibleFilterError, match="probe's stdout"):
        haproxy_setup_needs(None, ["haproxy"])
