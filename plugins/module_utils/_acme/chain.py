# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Choosing among the chains a CA offers (RFC 8555 section 7.4.2, Link rel="alternate")."""

from __future__ import annotations

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import load_certificates

try:
    from cryptography import x509
    from cryptography.x509.oid import NameOID
except ImportError:  # the module reports the missing library (jws.HAS_CRYPTOGRAPHY)
    HAS_CRYPTOGRAPHY = False
else:
    HAS_CRYPTOGRAPHY = True


def _common_names(name: x509.Name) -> list[str]:
    return [str(attr.value) for attr in name.get_attributes_for_oid(NameOID.COMMON_NAME)]


def top_issuer_names(chain_pem: bytes) -> list[str]:
    """Common names of the top-most certificate's issuer and subject (as certbot's --preferred-chain)."""
    top = load_certificates(chain_pem)[-1]
    return _common_names(top.issuer) + _common_names(top.subject)


def matches(chain_pem: bytes, preferred: str) -> bool:
    """Whether the chain ends at a CA called ``preferred`` (case-insensitive)."""
    wanted = preferred.strip().lower()
    return any(name.lower() == wanted for name in top_issuer_names(chain_pem))
