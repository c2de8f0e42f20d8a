# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Print the RFC 7638 JWK thumbprint of a PEM private key (EC or RSA).

Run on a node by the molecule verify step (``ansible.builtin.script`` with the
node's /usr/bin/python3 and Debian's cryptography), so the challenge answer is
checked against a thumbprint computed independently of the collection's code.

    python3 jwk_thumbprint.py /var/lib/acme/account/account.key
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def int_bytes(value: int, size: int = 0) -> bytes:
    return value.to_bytes(size or max(1, (value.bit_length() + 7) // 8), "big")


def jwk(key: object) -> dict[str, str]:
    """The required members of the public JWK (RFC 7638 section 3.2)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        numbers = key.public_key().public_numbers()
        size = (key.curve.key_size + 7) // 8
        return {"crv": _CURVES[key.curve.name], "kty": "EC",
                "x": b64url(int_bytes(numbers.x, size)), "y": b64url(int_bytes(numbers.y, size))}
    if isinstance(key, rsa.RSAPrivateKey):
        public = key.public_key().public_numbers()
        return {"e": b64url(int_bytes(public.e)), "kty": "RSA", "n": b64url(int_bytes(public.n))}
    raise SystemExit(f"unsupported key type {type(key).__name__}")


def main() -> int:
    with open(sys.argv[1], "rb") as handle:
        key = serialization.load_pem_private_key(handle.read(), password=None)
    # RFC 7638 section 3: members in lexicographic order, no whitespace.
    canonical = json.dumps(jwk(key), sort_keys=True, separators=(",", ":"))
    print(b64url(hashlib.sha256(canonical.encode("ascii")).digest()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
