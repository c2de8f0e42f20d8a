# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Certificate revocation (RFC 8555 section 7.6), and what ``acme_revoke`` does, without Ansible.

A revocation request is a JWS to ``revokeCert`` whose payload is the certificate (DER,
base64url) and, optionally, an RFC 5280 reason code. It is signed either

* by the **account key**, with the account's ``kid``: the CA accepts it for a
  certificate the account holds (or has authorizations for), or
* by the **certificate's own key**, with its ``jwk``: the proof that the request comes
  from whoever holds that key, which is what a CA wants for ``keyCompromise``.

A certificate revoked already is answered with ``alreadyRevoked`` (section 7.6), which
is what was asked: success, nothing changed.
"""

from __future__ import annotations

import typing as t

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import account as acct
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import jws
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.account_key import load_account_key
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.client import AcmeClient
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.common_args import client_from_params
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import (
    AcmeError,
    AcmeProblem,
    ConfigError,
    FileError,
    PemError,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._files import read_optional
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._module import RunResult
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import (
    CertInfo,
    cert_info,
    key_matches_certificate,
    load_certificates,
    load_private_key,
)

if t.TYPE_CHECKING:
    from cryptography import x509

ACCOUNT_KEY = "account_key"
CERTIFICATE_KEY = "certificate_key"

#: RFC 5280 section 5.3.1 CRLReason; 7 is not used.
REASONS: dict[str, int] = {
    "unspecified": 0,
    "keyCompromise": 1,
    "cACompromise": 2,
    "affiliationChanged": 3,
    "superseded": 4,
    "cessationOfOperation": 5,
    "certificateHold": 6,
    "removeFromCRL": 8,
    "privilegeWithdrawn": 9,
    "aACompromise": 10,
}
_BY_CODE = {code: name for name, code in REASONS.items()}
_BY_FOLDED = {name.lower(): name for name in REASONS}


def parse_reason(value: t.Any) -> tuple[str, int] | None:
    """``(name, code)`` for an RFC 5280 reason given by name (any case, ``_``/``-`` ignored) or
    number; None for no reason (the CA then records none, which means unspecified)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise _bad_reason(value)
    if isinstance(value, int):
        code = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        code = int(value.strip())
    elif isinstance(value, str):
        name = _BY_FOLDED.get(value.strip().replace("_", "").replace("-", "").lower())
        if name is None:
            raise _bad_reason(value)
        return name, REASONS[name]
    else:
        raise _bad_reason(value)
    if code not in _BY_CODE:
        raise _bad_reason(value)
    return _BY_CODE[code], code


def _bad_reason(value: t.Any) -> ConfigError:
    names = ", ".join(f"{name} ({code})" for name, code in REASONS.items())
    return ConfigError(f"reason {value!r} is no RFC 5280 revocation reason: use one of {names}", reason=str(value))


# ------------------------------------------------------------------ input


def load_certificate(path: str | None, content: str | None) -> tuple[x509.Certificate, bytes]:
    """The leaf (the first certificate) and the data it came from (a bundle may hold its key)."""
    if path and content:
        raise ConfigError("give certificate_path or certificate_content, not both")
    if content:
        data, what = content.encode("utf-8"), "certificate_content"
    elif path:
        read = read_optional(path)
        if read is None:
            raise FileError(f"certificate {path} does not exist", path=path)
        data, what = read, f"certificate {path}"
    else:
        raise ConfigError("the certificate to revoke is needed: set certificate_path or certificate_content")
    try:
        return load_certificates(data)[0], data
    except PemError as exc:
        raise PemError(f"{what}: {exc.msg}") from None


def certificate_key(cert: x509.Certificate, bundle: bytes, path: str | None, content: str | None,
                    info: CertInfo) -> jws.SigningKey:
    """The certificate's private key: from private_key_path/_content, else from the bundle itself."""
    if path and content:
        raise ConfigError("give private_key_path or private_key_content, not both")
    if content:
        key = load_private_key(content.encode("utf-8"), "private_key_content")
    elif path:
        data = read_optional(path)
        if data is None:
            raise FileError(f"private key {path} does not exist", path=path)
        key = load_private_key(data, f"private key {path}")
    elif b"PRIVATE KEY-----" in bundle:
        key = load_private_key(bundle, "the certificate bundle's key")
    else:
        raise ConfigError(
            "revoke_with: certificate_key needs the certificate's private key: the certificate holds none,"
            " so set private_key_path or private_key_content", serial=info.serial)
    if not key_matches_certificate(key, cert):
        raise ConfigError(
            f"the private key does not belong to certificate {info.serial}: the CA accepts a revocation"
            " signed by the certificate's own key only", serial=info.serial)
    return key


# ------------------------------------------------------------------ the request


def revocation_payload(cert: x509.Certificate, reason: int | None) -> dict[str, t.Any]:
    from cryptography.hazmat.primitives.serialization import Encoding  # noqa: PLC0415 - cryptography is optional

    payload: dict[str, t.Any] = {"certificate": jws.b64u(cert.public_bytes(Encoding.DER))}
    if reason is not None:
        payload["reason"] = reason
    return payload


def revoke(client: AcmeClient, cert: x509.Certificate, reason: int | None, use_jwk: bool,
           what: str) -> bool:
    """Send the revocation; True when revoked now, False when the CA says it was already.

    ``use_jwk``: signed by ``client.key`` with its ``jwk`` (the certificate's key); else by
    the account, whose ``kid`` the client must hold.
    """
    url = client.directory["revokeCert"]
    try:
        client.post(url, revocation_payload(cert, reason), use_jwk=use_jwk)
    except AcmeProblem as exc:
        if exc.short_type == "alreadyRevoked":
            return False
        raise _revocation_error(exc, what, use_jwk) from None
    return True


def _revocation_error(exc: AcmeProblem, what: str, use_jwk: bool) -> AcmeProblem:
    hint = ""
    if exc.short_type == "badRevocationReason":
        hint = "; this CA does not take that reason: give another one, or none"
    elif exc.short_type == "unauthorized" and not use_jwk:
        hint = ("; an account may revoke only certificates it holds or has authorizations for: revoke"
                " with the certificate's own key (revoke_with: certificate_key)")
    elif exc.short_type == "unauthorized":
        hint = "; with its own key the CA expects a request for a certificate of that very key"
    exc.msg = f"revoking {what}: {exc.msg}{hint}"
    exc.args = (exc.msg,)
    return exc


def _describe(info: CertInfo) -> str:
    names = ", ".join(info.domains) or info.subject or "no names"
    return f"certificate {info.serial} ({names})"


def run(params: t.Mapping[str, t.Any], check_mode: bool = False, session: t.Any = None) -> RunResult:
    """The module's result; raises HaproxyAcmeError subclasses. Check mode sends nothing."""
    return RunResult(_run(params, check_mode, session))


def _run(params: t.Mapping[str, t.Any], check_mode: bool, session: t.Any) -> dict[str, t.Any]:
    reason = parse_reason(params.get("reason"))
    revoke_with = params.get("revoke_with") or ACCOUNT_KEY
    if revoke_with not in (ACCOUNT_KEY, CERTIFICATE_KEY):
        raise ConfigError(f"revoke_with must be {ACCOUNT_KEY} or {CERTIFICATE_KEY}, not {revoke_with!r}")
    cert, bundle = load_certificate(params.get("certificate_path"), params.get("certificate_content"))
    info = cert_info(cert)
    what = _describe(info)
    client = client_from_params(params, session=session)
    if revoke_with == CERTIFICATE_KEY:
        client.key = certificate_key(cert, bundle, params.get("private_key_path"),
                                     params.get("private_key_content"), info)
    else:
        if params.get("private_key_path") or params.get("private_key_content"):
            raise ConfigError("private_key_path and private_key_content go with revoke_with: certificate_key")
        client.key = load_account_key(params.get("account_key_path"), params.get("account_key_content"))
    result: dict[str, t.Any] = {
        "changed": True,
        "revoked": True,
        "already_revoked": False,
        "serial": info.serial,
        "domains": list(info.domains),
        "not_after": info.as_dict()["not_after"],
        "reason": reason[0] if reason else None,
        "reason_code": reason[1] if reason else None,
        "revoked_with": revoke_with,
        "account_uri": None,
    }
    if check_mode:
        result["ca_requests"] = 0
        return result
    if revoke_with == ACCOUNT_KEY:
        account = acct.lookup(client)
        if account is None or account.status == "deactivated":
            state = "is deactivated" if account is not None else "does not exist"
            raise AcmeError(
                f"revoking {what}: the ACME account of the account key {state} at {client.directory_url}:"
                " revoke with the certificate's own key (revoke_with: certificate_key)", serial=info.serial)
        result["account_uri"] = account.uri
    revoked = revoke(client, cert, reason[1] if reason else None, revoke_with == CERTIFICATE_KEY, what)
    result.update(changed=revoked, already_revoked=not revoked)
    result["ca_requests"] = client.transport.request_count
    return result
