# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Whether what HAProxy holds is the bundle we want, from ``show ssl cert <name>``.

The leaf is compared by serial and SHA-1 fingerprint (HAProxy's ``Serial`` and
``SHA1 FingerPrint``). The chain is compared by the ``Chain Subject`` /
``Chain Issuer`` lines, so a new intermediate with the same leaf is pushed too.
HAProxy prints names in OpenSSL's one-line form (``/C=US/O=Org/CN=R3``); where a
name holds an attribute or a character we cannot print exactly as OpenSSL does,
only the number of chain certificates is compared, so an unusual name can never
make every run report a change.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.parse import RuntimeCert
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import CertInfo, same_serial

if t.TYPE_CHECKING:
    from cryptography import x509

# OpenSSL's short names (OBJ_nid2sn) for the attributes CAs use.
_SHORT_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.5": "serialNumber",
    "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
    "1.2.840.113549.1.9.1": "emailAddress",
}


def dn_oneline(name: x509.Name) -> str | None:
    """``/C=US/O=Org/CN=R3`` as HAProxy prints it, or None when we cannot be sure."""
    parts = []
    for attribute in name:
        short = _SHORT_NAMES.get(attribute.oid.dotted_string)
        value = attribute.value
        if short is None or not isinstance(value, str) or not value.isascii() or not value.isprintable():
            return None
        parts.append(f"/{short}={value}")
    return "".join(parts)


@dataclass(frozen=True)
class ChainNames:
    """The chain of a bundle as HAProxy would print it; ``exact`` False: count only."""

    count: int
    subjects: tuple[str, ...] = ()
    issuers: tuple[str, ...] = ()
    exact: bool = False


def chain_names(chain: t.Sequence[x509.Certificate]) -> ChainNames:
    subjects = [dn_oneline(c.subject) for c in chain]
    issuers = [dn_oneline(c.issuer) for c in chain]
    if any(s is None for s in subjects) or any(i is None for i in issuers):
        return ChainNames(count=len(chain))
    return ChainNames(len(chain), tuple(t.cast(str, s) for s in subjects), tuple(t.cast(str, i) for i in issuers), True)


def same_leaf(info: CertInfo, current: RuntimeCert) -> bool:
    return (
        bool(current.serial)
        and same_serial(info.serial, current.serial)
        and info.sha1_fingerprint.upper() == current.sha1_fingerprint.replace(":", "").upper()
    )


def same_chain(wanted: ChainNames, current: RuntimeCert) -> bool:
    if len(current.chain_subjects) != wanted.count:
        return False
    if not wanted.exact:
        return True
    return tuple(current.chain_subjects) == wanted.subjects and (
        not current.chain_issuers or tuple(current.chain_issuers) == wanted.issuers
    )
