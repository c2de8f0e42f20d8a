# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The protocol floor: the least a sequential RFC 8555 client does, with requests and cryptography.

For each name, in turn: newOrder, the authorization, the HTTP-01 challenge, polls until
the authorization is valid, finalize with a fresh EC P-256 key's CSR, polls until the
order is valid, download. One account (newAccount once, RFC 8555 section 7.3), one
session, no retries, no checks beyond the status codes, 20 ms between polls. The
HTTP-01 answer must come from elsewhere: the lab's HAProxy answers it statelessly for
the account key's thumbprint.

Usage: python bench/floor.py --directory URL --ca-path PEM --account-key PEM --out DIR NAME...
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
import typing as t
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

POLL = 0.02


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Client:
    def __init__(self, directory: str, ca_path: str, key: ec.EllipticCurvePrivateKey) -> None:
        self.http = requests.Session()
        self.http.trust_env = False  # REQUESTS_CA_BUNDLE would win over verify
        self.http.verify = ca_path
        self.urls = self.http.get(directory, timeout=10).json()
        self.key = key
        numbers = key.public_key().public_numbers()
        self.jwk = {"crv": "P-256", "kty": "EC", "x": b64(numbers.x.to_bytes(32, "big")),
                    "y": b64(numbers.y.to_bytes(32, "big"))}
        self.kid: str | None = None
        self.nonce = self.http.head(self.urls["newNonce"], timeout=10).headers["Replay-Nonce"]

    def post(self, url: str, payload: t.Any) -> requests.Response:
        """A JWS POST (RFC 8555 section 6.2); payload None is a POST-as-GET."""
        header: dict[str, t.Any] = {"alg": "ES256", "nonce": self.nonce, "url": url}
        header.update({"kid": self.kid} if self.kid else {"jwk": self.jwk})
        protected = b64(json.dumps(header).encode())
        body = "" if payload is None else b64(json.dumps(payload).encode())
        r, s = decode_dss_signature(self.key.sign(f"{protected}.{body}".encode(), ec.ECDSA(hashes.SHA256())))
        jws = {"protected": protected, "payload": body, "signature": b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))}
        resp = self.http.post(url, json=jws, headers={"Content-Type": "application/jose+json"}, timeout=10)
        self.nonce = resp.headers.get("Replay-Nonce", self.nonce)
        if resp.status_code >= 400:
            raise SystemExit(f"{url}: {resp.status_code} {resp.text}")
        return resp

    def account(self) -> None:
        self.kid = self.post(self.urls["newAccount"], {"termsOfServiceAgreed": True}).headers["Location"]

    def poll(self, url: str, until: str) -> dict[str, t.Any]:
        while True:
            body = self.post(url, None).json()
            if body["status"] == until:
                return dict(body)
            if body["status"] == "invalid":
                raise SystemExit(f"{url} is invalid: {body}")
            time.sleep(POLL)

    def issue(self, name: str) -> bytes:
        resp = self.post(self.urls["newOrder"], {"identifiers": [{"type": "dns", "value": name}]})
        order_url, order = resp.headers["Location"], resp.json()
        for authz_url in order["authorizations"]:
            authz = self.post(authz_url, None).json()
            challenge = next(c for c in authz["challenges"] if c["type"] == "http-01")
            self.post(challenge["url"], {})
            self.poll(authz_url, "valid")
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
               .sign(key, hashes.SHA256()))
        self.post(order["finalize"], {"csr": b64(csr.public_bytes(serialization.Encoding.DER))})
        order = self.poll(order_url, "valid")
        chain = self.post(order["certificate"], None).content
        return chain + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/floor.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--directory", required=True)
    parser.add_argument("--ca-path", required=True)
    parser.add_argument("--account-key", required=True)
    parser.add_argument("--out", required=True, help="directory for <name>.pem (chain and key)")
    parser.add_argument("names", nargs="+")
    args = parser.parse_args()
    key = serialization.load_pem_private_key(Path(args.account_key).read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SystemExit("the floor client signs with an EC P-256 account key")
    client = Client(args.directory, args.ca_path, key)
    client.account()
    for name in args.names:
        Path(args.out, f"{name}.pem").write_bytes(client.issue(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
