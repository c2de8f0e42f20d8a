# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Print, as JSON, the certificate a TLS server presents for a name (SNI).

Run on the controller by the molecule verify step: a real client handshake
from outside the node, verified against the ACME CA's root and the name.

    python served_cert.py --address 10.231.0.11 --name node1.example --cafile pebble-root.pem

Output: {"serial": "<upper-case hex, no leading zeros>", "dns_names": [...],
"not_after": "...", "tls_version": "...", "alpn": "..."}.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import sys
import typing as t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--name", required=True, help="server name sent as SNI and verified")
    parser.add_argument("--cafile", required=True)
    parser.add_argument("--timeout", type=float, default=10)
    args = parser.parse_args()

    context = ssl.create_default_context(cafile=args.cafile)
    context.check_hostname = True
    context.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection((args.address, args.port), timeout=args.timeout) as sock, \
            context.wrap_socket(sock, server_hostname=args.name) as tls:
        cert = tls.getpeercert()
        version, alpn = tls.version(), tls.selected_alpn_protocol()
    assert cert is not None  # verified handshake: the peer certificate is there
    sans = t.cast("tuple[tuple[str, str], ...]", cert.get("subjectAltName", ()))
    print(json.dumps({
        "serial": str(cert["serialNumber"]).lstrip("0").upper(),
        "dns_names": [value for kind, value in sans if kind == "DNS"],
        "not_after": cert["notAfter"],
        "tls_version": version,
        "alpn": alpn,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
