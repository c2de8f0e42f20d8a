# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A real TLS handshake with SNI: which certificate does HAProxy hand out for a name?

The Runtime API says what HAProxy holds; this says what a client gets. Trust is
not checked (a private or test CA is fine): only the served serial matters.
"""

from __future__ import annotations

import socket
import ssl
import typing as t

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import (
    ConfigError,
    RuntimeApiVerifyError,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import ip_text, same_serial, serial_hex


def split_host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.strip().rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not (port.isascii() and port.isdigit()):
        raise ConfigError(f"verify_address {address!r} must be host:port", verify_address=address)
    return host, int(port)


def sni_for(domains: t.Sequence[str]) -> str | None:
    """A name to ask for: the first DNS name; a wildcard gets a label of our own.

    A certificate for IP addresses only gives its first address, which served_serial
    asks for without SNI (RFC 6066 section 3 allows no address there).
    """
    for domain in domains:
        if ip_text(domain) is None:
            return "tlsops-verify" + domain[1:] if domain.startswith("*.") else domain
    return domains[0] if domains else None


def _what(server_name: str) -> str:
    return f"{server_name} (no SNI)" if ip_text(server_name) is not None else server_name


def served_serial(address: str, server_name: str, timeout: float = 10.0) -> str:
    """The serial (HAProxy's hex form) of the certificate served for ``server_name``;
    for an IP address, to a client that sends no SNI."""
    host, port = split_host_port(address)
    sni = None if ip_text(server_name) is not None else server_name
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, context.wrap_socket(
            raw, server_hostname=sni
        ) as tls:
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        raise RuntimeApiVerifyError(
            f"TLS handshake with {address} for {_what(server_name)} failed: {exc}", verify_address=address, sni=sni
        ) from None
    if not der:
        raise RuntimeApiVerifyError(
            f"{address} sent no certificate for {_what(server_name)}", verify_address=address, sni=sni
        )
    # Imported here: the Runtime API modules load this file, and only this function needs it.
    from cryptography import x509  # noqa: PLC0415

    return serial_hex(x509.load_der_x509_certificate(der).serial_number)


def check_served(address: str, domains: t.Sequence[str], serial: str, timeout: float = 10.0) -> str:
    """RuntimeApiVerifyError unless a handshake for the certificate's first name shows ``serial``."""
    name = sni_for(domains)
    if name is None:
        raise RuntimeApiVerifyError("the certificate has no name to ask for", verify_address=address)
    got = served_serial(address, name, timeout)
    if not same_serial(got, serial):
        raise RuntimeApiVerifyError(
            f"{address} serves serial {got} for {_what(name)}, not {serial}", verify_address=address, sni=name, served=got
        )
    return got
