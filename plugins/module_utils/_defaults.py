# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection's defaults, each written once.

The argument specs, the layers below them and the host renewal job read them from
here; the roles' ``defaults/main.yml`` cannot import Python, so a unit test
(``tests/unit/plugins/module_utils/test_defaults.py``) checks that they agree.
No imports: any module may read this one, the host job included.
"""

from __future__ import annotations

# ------------------------------------------------------------------ files

BUNDLE_MODE = 0o640  # PEM bundles: the ACME user writes them, HAProxy's group reads them
ACCOUNT_KEY_MODE = 0o600  # the ACME account key: its owner only
MAP_MODE = 0o644  # HAProxy's map files hold no secret


def mode_text(mode: int) -> str:
    """A mode as the ``mode`` options and the roles write it: ``'0640'``."""
    return f"{mode:04o}"


# ------------------------------------------------------------------- ACME

DIRECTORY = "letsencrypt_test"  # an alias of docs/modules.md: the staging CA until one is chosen
KEY_TYPE = "ec256"  # certificate and account keys
KEY_TYPES = ("ec256", "ec384", "rsa2048", "rsa3072", "rsa4096")  # the key types a key may be made as
REQUEST_TIMEOUT = 10.0  # seconds per HTTP request to the CA
POLL_TIMEOUT = 120.0  # seconds to wait for an authorization or an order to become valid
CONCURRENCY = 4  # orders in flight at once
MAX_CONCURRENCY = 16
LOCK_TIMEOUT = 300.0  # seconds to wait for another run on the same certificate directory
USE_ARI = True  # ask the CA's renewalInfo (RFC 9773) when a certificate is due

# ---------------------------------------------------------------- HAProxy

SOCKET = "/run/haproxy/admin.sock"  # Debian's haproxy.cfg: the stats socket at admin level
SOCKET_TIMEOUT = 10.0  # seconds per Runtime API command
BUSY_TIMEOUT = 10.0  # seconds to wait for another client's transaction to end
BUFSIZE = 16384  # HAProxy's tune.bufsize default: the longest command line it takes
MAP_PATH = "/etc/haproxy/maps/acme-thumbprint.map"
MAP_KEY = "thumbprint"
