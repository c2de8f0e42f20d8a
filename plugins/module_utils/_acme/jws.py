# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""JSON Web Keys, RFC 7638 thumbprints and the flattened JWS of RFC 8555 section 6.2."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import typing as t

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import ConfigError

# Guarded so that a module can report a missing library instead of a traceback.
try:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
except ImportError:
    HAS_CRYPTOGRAPHY = False
else:
    HAS_CRYPTOGRAPHY = True

if t.TYPE_CHECKING:
    from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import PrivateKey as SigningKey
    from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import PublicKey

# curve name -> (JWK crv, JWS alg, hash name, coordinate size in bytes) per RFC 7518 sections 3.4 and 6.2.1
_CURVES: dict[str, tuple[str, str, str, int]] = {
    "secp256r1": ("P-256", "ES256", "SHA256", 32),
    "secp384r1": ("P-384", "ES384", "SHA384", 48),
    "secp521r1": ("P-521", "ES512", "SHA512", 66),
}


def b64u(data: bytes) -> str:
    """base64url without padding (RFC 8555 section 6.1, RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_decode(text: str) -> bytes:
    """Inverse of :func:`b64u`; also accepts padded input."""
    text = text.strip()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int_bytes(value: int, size: int | None = None) -> bytes:
    size = size if size is not None else max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(size, "big")


def _curve(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> tuple[str, str, str, int]:
    try:
        return _CURVES[key.curve.name]
    except KeyError:
        raise ConfigError(f"unsupported account key curve {key.curve.name}: use P-256, P-384 or RSA") from None


def _public(key: SigningKey | PublicKey) -> PublicKey:
    if isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        return key.public_key()
    return key


def jwk(key: SigningKey | PublicKey) -> dict[str, str]:
    """The public JWK (RFC 7517/7518) of a key, with the members RFC 7638 hashes."""
    public = _public(key)
    if isinstance(public, ec.EllipticCurvePublicKey):
        crv, _alg, _hash, size = _curve(public)
        numbers = public.public_numbers()
        return {"crv": crv, "kty": "EC", "x": b64u(_int_bytes(numbers.x, size)), "y": b64u(_int_bytes(numbers.y, size))}
    if isinstance(public, rsa.RSAPublicKey):
        rsa_numbers = public.public_numbers()
        return {"e": b64u(_int_bytes(rsa_numbers.e)), "kty": "RSA", "n": b64u(_int_bytes(rsa_numbers.n))}
    raise ConfigError("unsupported account key type: use an EC (P-256, P-384) or RSA key")


def thumbprint_of_jwk(key_jwk: t.Mapping[str, str]) -> str:
    """RFC 7638: SHA-256 over the required members, sorted, no whitespace; base64url."""
    required = ("crv", "kty", "x", "y") if key_jwk.get("kty") == "EC" else ("e", "kty", "n")
    canonical = json.dumps({name: key_jwk[name] for name in required}, sort_keys=True, separators=(",", ":"))
    return b64u(hashlib.sha256(canonical.encode("utf-8")).digest())


def thumbprint(key: SigningKey | PublicKey) -> str:
    """The account key thumbprint HAProxy puts after the token (RFC 8555 section 8.1)."""
    return thumbprint_of_jwk(jwk(key))


def algorithm(key: SigningKey) -> str:
    """The JWS ``alg`` for a key: ES256 / ES384 / ES512 or RS256."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return _curve(key)[1]
    return "RS256"


def _signature(key: SigningKey, data: bytes) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        _crv, _alg, hash_name, size = _curve(key)
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(getattr(hashes, hash_name)())))
        # JWS wants the raw r || s, each padded to the curve size (RFC 7518 section 3.4), not DER.
        return _int_bytes(r, size) + _int_bytes(s, size)
    return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def _flattened(protected: t.Mapping[str, t.Any], payload: str, sign: t.Callable[[bytes], bytes]) -> dict[str, str]:
    protected_b64 = b64u(json.dumps(protected, separators=(",", ":")).encode("utf-8"))
    signature = sign(f"{protected_b64}.{payload}".encode("ascii"))
    return {"protected": protected_b64, "payload": payload, "signature": b64u(signature)}


def encode_payload(payload: t.Any) -> str:
    """The JWS payload: ``None`` means POST-as-GET, an empty string (RFC 8555 section 6.3)."""
    if payload is None:
        return ""
    return b64u(json.dumps(payload, separators=(",", ":")).encode("utf-8"))


def sign(
    key: SigningKey, url: str, payload: t.Any, nonce: str | None, kid: str | None = None
) -> dict[str, str]:
    """A flattened JWS for an ACME POST: ``kid`` once the account exists, else the ``jwk`` (section 6.2)."""
    protected: dict[str, t.Any] = {"alg": algorithm(key), "url": url}
    if nonce is not None:
        protected["nonce"] = nonce
    if kid:
        protected["kid"] = kid
    else:
        protected["jwk"] = jwk(key)
    return _flattened(protected, encode_payload(payload), lambda data: _signature(key, data))


def decode_hmac_key(hmac_key: str) -> bytes:
    """The EAB MAC key as the CA hands it out (base64url); ConfigError when it is not."""
    try:
        key = b64u_decode(hmac_key)
    except (ValueError, TypeError):
        raise ConfigError("eab_hmac_key is not base64url-encoded") from None
    if not key:
        raise ConfigError("eab_hmac_key is empty")
    return key


def eab_binding(account_key: SigningKey, eab_kid: str, hmac_key: str, url: str) -> dict[str, str]:
    """External account binding (RFC 8555 section 7.3.4): the account JWK signed with HS256."""
    mac_key = decode_hmac_key(hmac_key)
    protected = {"alg": "HS256", "kid": eab_kid, "url": url}
    payload = b64u(json.dumps(jwk(account_key), separators=(",", ":")).encode("utf-8"))
    return _flattened(protected, payload, lambda data: hmac.new(mac_key, data, hashlib.sha256).digest())
