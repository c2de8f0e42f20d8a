# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""JWK, RFC 7638 thumbprints and JWS signatures, checked with cryptography itself."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import typing as t

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import jws
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import ConfigError


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# RFC 7638 section 3.1: the RSA key of RFC 7517 appendix A.1 and its thumbprint.
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMs"
    "tn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajr"
    "n1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

# RFC 7517 appendix A.1: an EC P-256 public key.
EC_X = "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4"
EC_Y = "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"


def test_rfc7638_rsa_example() -> None:
    key = rsa.RSAPublicNumbers(65537, int.from_bytes(unb64u(RFC7638_N), "big")).public_key()
    assert jws.jwk(key) == {"e": "AQAB", "kty": "RSA", "n": RFC7638_N}
    assert jws.thumbprint(key) == RFC7638_THUMBPRINT


def test_ec_thumbprint_is_the_canonical_json_hash() -> None:
    key = ec.EllipticCurvePublicNumbers(
        int.from_bytes(unb64u(EC_X), "big"), int.from_bytes(unb64u(EC_Y), "big"), ec.SECP256R1()
    ).public_key()
    # Written out by hand, as RFC 7638 section 3.2 orders it: crv, kty, x, y; no whitespace.
    canonical = f'{{"crv":"P-256","kty":"EC","x":"{EC_X}","y":"{EC_Y}"}}'
    expected = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    assert jws.thumbprint(key) == expected
    assert jws.thumbprint_of_jwk({**jws.jwk(key), "alg": "ES256", "use": "sig"}) == expected


def test_ec_coordinates_keep_leading_zero_bytes() -> None:
    # A coordinate with a leading zero byte must still be 32 bytes (RFC 7518 section 6.2.1.2).
    for _ in range(300):
        key = ec.generate_private_key(ec.SECP256R1())
        numbers = key.public_key().public_numbers()
        if numbers.x.bit_length() <= 248 or numbers.y.bit_length() <= 248:
            break
    data = jws.jwk(key)
    assert len(unb64u(data["x"])) == 32 and len(unb64u(data["y"])) == 32


def _verify(key: t.Any, alg: str, signed: bytes, signature: bytes) -> None:
    public = key.public_key()
    if alg == "RS256":
        public.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        return
    size = {"ES256": 32, "ES384": 48}[alg]
    assert len(signature) == 2 * size, "JWS EC signatures are raw r||s, not DER"
    r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
    digest = hashes.SHA256() if alg == "ES256" else hashes.SHA384()
    public.verify(encode_dss_signature(r, s), signed, ec.ECDSA(digest))


KEYS = [
    pytest.param(lambda: ec.generate_private_key(ec.SECP256R1()), "ES256", id="ec256"),
    pytest.param(lambda: ec.generate_private_key(ec.SECP384R1()), "ES384", id="ec384"),
    pytest.param(lambda: rsa.generate_private_key(65537, 2048), "RS256", id="rsa2048"),
]


@pytest.mark.parametrize(("make_key", "alg"), KEYS)
@pytest.mark.parametrize("kid", [None, "https://ca.test/acct/1"])
def test_sign_verifies_and_has_the_right_header(make_key: t.Callable[[], t.Any], alg: str, kid: str | None) -> None:
    key = make_key()
    body = jws.sign(key, "https://ca.test/new-order", {"identifiers": []}, "nonce-1", kid)
    protected = json.loads(unb64u(body["protected"]))
    assert protected["alg"] == alg and protected["url"] == "https://ca.test/new-order"
    assert protected["nonce"] == "nonce-1"
    if kid:
        assert protected["kid"] == kid and "jwk" not in protected
    else:
        assert protected["jwk"] == jws.jwk(key) and "kid" not in protected
    assert json.loads(unb64u(body["payload"])) == {"identifiers": []}
    _verify(key, alg, f"{body['protected']}.{body['payload']}".encode(), unb64u(body["signature"]))


def test_post_as_get_has_an_empty_payload() -> None:
    body = jws.sign(ec.generate_private_key(ec.SECP256R1()), "https://ca.test/order/1", None, "n", "kid")
    assert body["payload"] == ""


def test_eab_binding_is_an_hs256_mac_over_the_account_jwk() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    mac_key = b"0123456789abcdef0123456789abcdef"
    binding = jws.eab_binding(key, "kid-1", jws.b64u(mac_key), "https://ca.test/new-acct")
    protected = json.loads(unb64u(binding["protected"]))
    assert protected == {"alg": "HS256", "kid": "kid-1", "url": "https://ca.test/new-acct"}
    assert json.loads(unb64u(binding["payload"])) == jws.jwk(key)
    mac = hmac.new(mac_key, f"{binding['protected']}.{binding['payload']}".encode(), hashlib.sha256).digest()
    assert unb64u(binding["signature"]) == mac


@pytest.mark.parametrize("bad", ["", "==="])
def test_eab_key_must_be_base64url(bad: str) -> None:
    with pytest.raises(ConfigError):
        jws.eab_binding(ec.generate_private_key(ec.SECP256R1()), "kid", bad, "https://ca.test/new-acct")


@pytest.mark.parametrize(("data", "text"), [(b"", ""), (b"\xff\xfe", "__4"), (b"abc", "YWJj")])
def test_b64u_round_trip(data: bytes, text: str) -> None:
    assert jws.b64u(data) == text
    assert jws.b64u_decode(text) == data


def test_unsupported_curve_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="curve"):
        jws.jwk(ec.generate_private_key(ec.SECP224R1()))
