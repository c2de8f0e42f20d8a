# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""An in-process ACME server behind the HTTP session seam, for unit tests.

``FakeAcme`` has the ``request(method, url, data=, headers=, timeout=)`` method of a
``requests.Session``. It checks what a real CA checks (nonces, JWS signatures, kid vs
jwk, account existence) and issues real certificates from a throw-away CA, so unit
tests drive the whole client, request by request, without a network. End to end means
against pebble: tests/integration.

Faults at the same seam (the knobs below ``profiles``): a reply lost after the request
was processed, a connection reset before it was, a proxy's 503, a body cut short, a CA
that is gone. Each raises what ``requests`` raises for it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import itertools
import json
import random
import threading
import typing as t
from dataclasses import dataclass, field

import requests
import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

BASE = "https://ca.test"
DIRECTORY_URL = f"{BASE}/dir"
ERR = "urn:ietf:params:acme:error:"


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str, key: t.Any = None, issuer: tuple[t.Any, x509.Name] | None = None) -> tuple[t.Any, x509.Certificate]:
    """A CA certificate; self-signed unless ``issuer`` = (key, name) is given."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    signer_key, issuer_name = issuer or (key, _name(cn))
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(issuer_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(signer_key, hashes.SHA256())
    )
    return key, cert


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Response:
    status_code: int
    headers: dict[str, str]
    content: bytes
    url: str


@dataclass
class Authz:
    url: str
    domain: str
    status: str = "pending"
    challenge_status: str = "pending"
    polls_left: int = 1
    error: dict[str, t.Any] | None = None
    kind: str = "dns"  # the identifier type: dns, or ip (RFC 8738)


@dataclass
class Order:
    url: str
    account: str
    domains: list[str]
    authzs: list[str]
    status: str = "pending"
    cert_url: str | None = None
    polls_left: int = 1
    replaces: str | None = None
    profile: str | None = None
    ips: list[str] = field(default_factory=list)  # the domains ordered as type "ip"


@dataclass
class FakeAcme:
    """The knobs say how the CA misbehaves; the lists record what it was asked."""

    renewal_info: bool = False
    nonce_reject: int = 0               # percent of good nonces refused with badNonce
    fail_domains: tuple[str, ...] = ()  # validation fails (unauthorized)
    reject_domains: tuple[str, ...] = ()  # newOrder refuses them (rejectedIdentifier)
    rate_limited: bool = False          # newOrder answers 429 rateLimited
    retry_after: str = "3600"
    terms: bool = True
    eab_keys: dict[str, str] = field(default_factory=dict)
    validity_days: int = 90
    ari_window: tuple[dt.datetime, dt.datetime] | None = None
    reject_replaces: bool = False
    # what a refused ``replaces`` gets: (HTTP status, problem type, detail)
    replaces_problem: tuple[int, str, str] = (409, "alreadyReplaced", "already replaced")
    profiles: dict[str, str] = field(default_factory=dict)  # meta.profiles: name -> description
    # Revocation reasons revokeCert takes (pebble's: 0-10 but 7); a tuple restricts them, as a public CA does.
    revocation_reasons: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 8, 9, 10)
    # Faults. A dict maps a part of the URL ("/chall/", "/finalize/", "/new-order", "/nonce") to how
    # many requests to hit; each hit counts down.
    lose_reply: dict[str, int] = field(default_factory=dict)   # processed, then the connection resets
    reset_before: dict[str, int] = field(default_factory=dict)  # the connection resets, nothing processed
    truncate: dict[str, int] = field(default_factory=dict)  # processed, the body cut to half its Content-Length
    unavailable: int = 0                 # percent of requests a proxy answers 503 (empty body), unprocessed
    unavailable_retry_after: str | None = None
    down: bool = False                   # connection refused, every request
    down_after: int | None = None        # ... once this many requests were made
    requests: list[tuple[str, str]] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    accounts: dict[str, dict[str, t.Any]] = field(default_factory=dict)  # thumbprint -> account
    revoked: dict[int, int | None] = field(default_factory=dict)  # serial -> reason code (None: none given)
    # Every keyChange request as received: (outer protected header, inner protected header, inner payload).
    key_changes: list[tuple[dict[str, t.Any], dict[str, t.Any], dict[str, t.Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._nonces: set[str] = set()
        self._rng = random.Random(7)
        self.root_key, self.root = make_ca("Fake Root X1")
        self.root2_key, self.root2 = make_ca("Fake Root X2")
        self.inter_key, self.inter = make_ca("Fake Intermediate", issuer=(self.root_key, self.root.subject))
        _, self.inter_cross = make_ca("Fake Intermediate", key=self.inter_key, issuer=(self.root2_key, self.root2.subject))
        self._authz: dict[str, Authz] = {}
        self._orders: dict[str, Order] = {}
        self._certs: dict[str, bytes] = {}
        self._account_keys: dict[str, t.Any] = {}  # account URL -> public key
        self._cert_accounts: dict[int, str] = {}  # serial -> the account that ordered it
        self.issued: list[x509.Certificate] = []

    # ------------------------------------------------------------ plumbing

    def close(self) -> None:
        pass

    def _id(self) -> str:
        return str(next(self._ids))

    def _nonce(self) -> str:
        nonce = b64u(self._rng.randbytes(12))
        self._nonces.add(nonce)
        return nonce

    def _reply(self, url: str, status: int, body: t.Any = None, headers: dict[str, str] | None = None) -> Response:
        hdrs = {"Replay-Nonce": self._nonce(), **(headers or {})}
        if isinstance(body, bytes):
            content = body
        elif body is None:
            content = b""
        else:
            content = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        return Response(status, hdrs, content, url)

    def _problem(self, url: str, status: int, kind: str, detail: str, **extra: t.Any) -> Response:
        headers = extra.pop("headers", None)
        body = {"type": ERR + kind, "detail": detail, "status": status, **extra}
        response = self._reply(url, status, body, headers)
        response.headers["Content-Type"] = "application/problem+json"
        return response

    def directory(self) -> dict[str, t.Any]:
        data: dict[str, t.Any] = {
            "newNonce": f"{BASE}/nonce", "newAccount": f"{BASE}/new-acct", "newOrder": f"{BASE}/new-order",
            "revokeCert": f"{BASE}/revoke", "keyChange": f"{BASE}/key-change", "meta": {},
        }
        if self.terms:
            data["meta"]["termsOfService"] = f"{BASE}/terms"
        if self.eab_keys:
            data["meta"]["externalAccountRequired"] = True
        if self.renewal_info:
            data["renewalInfo"] = f"{BASE}/renewal-info"
        if self.profiles:
            data["meta"]["profiles"] = dict(self.profiles)
        return data

    def count(self, path_part: str, method: str | None = None) -> int:
        return sum(1 for m, u in self.requests if path_part in u and (method is None or m == method))

    # ------------------------------------------------------------ the seam

    def request(self, method: str, url: str, data: bytes | None = None, headers: dict[str, str] | None = None,
                timeout: float | None = None) -> Response:
        assert timeout, "every HTTP call needs a timeout"
        with self._lock:
            self.requests.append((method, url))
            if self.down or (self.down_after is not None and len(self.requests) > self.down_after):
                raise refused(url)
            if _hit(self.reset_before, url):
                raise reset()
            if self.unavailable and self._rng.randrange(100) < self.unavailable:
                retry = {"Retry-After": self.unavailable_retry_after} if self.unavailable_retry_after else {}
                return Response(503, retry, b"", url)
            response = self._dispatch(method, url, data, headers)
            if _hit(self.lose_reply, url):
                raise reset()
            if _hit(self.truncate, url):
                cut = response.content[: len(response.content) // 2]
                return Response(response.status_code, {**response.headers, "Content-Length": str(len(response.content))},
                                cut, url)
            return response

    def _dispatch(self, method: str, url: str, data: bytes | None, headers: dict[str, str] | None) -> Response:
        if method == "GET":
            return self._get(url)
        if method == "HEAD" and url == f"{BASE}/nonce":
            return self._reply(url, 200)
        assert method == "POST", method
        assert (headers or {}).get("Content-Type") == "application/jose+json"
        return self._post(url, json.loads(t.cast(bytes, data)))

    def _get(self, url: str) -> Response:
        if url == DIRECTORY_URL:
            return self._reply(url, 200, self.directory())
        if url.startswith(f"{BASE}/renewal-info/") and self.renewal_info:
            if self.ari_window is None:
                return self._problem(url, 404, "malformed", "no such certificate")
            start, end = self.ari_window
            window = {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "end": end.strftime("%Y-%m-%dT%H:%M:%SZ")}
            return self._reply(url, 200, {"suggestedWindow": window}, {"Retry-After": "21600"})
        return self._problem(url, 404, "malformed", "not found")

    # ------------------------------------------------------------ JWS checks

    def _verify(self, url: str, jws: dict[str, str]) -> tuple[t.Any, t.Any, str | None] | Response:  # noqa: PLR0911
        protected = json.loads(unb64u(jws["protected"]))
        if protected.get("url") != url:
            return self._problem(url, 401, "unauthorized", "url mismatch")
        nonce = protected.get("nonce")
        if nonce not in self._nonces:
            return self._problem(url, 400, "badNonce", "unknown nonce")
        self._nonces.discard(nonce)
        if self.nonce_reject and self._rng.randrange(100) < self.nonce_reject:
            return self._problem(url, 400, "badNonce", "JWS has an invalid anti-replay nonce")
        if ("jwk" in protected) == ("kid" in protected):
            return self._problem(url, 400, "malformed", "exactly one of jwk and kid")
        kid = protected.get("kid")
        key = _key_from_jwk(protected["jwk"]) if "jwk" in protected else self._account_keys.get(kid)
        if key is None:
            return self._problem(url, 400, "accountDoesNotExist", "no such account")
        signed = f"{jws['protected']}.{jws['payload']}".encode()
        if not _verify_signature(key, protected["alg"], signed, unb64u(jws["signature"])):
            return self._problem(url, 400, "malformed", "bad signature")
        payload = json.loads(unb64u(jws["payload"])) if jws["payload"] else None
        return payload, protected, kid

    def _post(self, url: str, jws: dict[str, str]) -> Response:
        checked = self._verify(url, jws)
        if isinstance(checked, Response):
            return checked
        payload, protected, kid = checked
        self._last_protected: dict[str, t.Any] = protected
        if url == f"{BASE}/new-acct":
            return self._new_account(url, payload, protected)
        if url == f"{BASE}/revoke":
            return self._revoke(url, payload, protected, kid)
        assert kid, f"{url} must be signed with kid"
        if self.accounts_by_url(kid).get("status") == "deactivated":
            return self._problem(url, 401, "unauthorized", "Account has been deactivated")
        handler = self._route(url)
        return handler(url, payload, kid)

    def accounts_by_url(self, url: str) -> dict[str, t.Any]:
        return next((a for a in self.accounts.values() if a["url"] == url), {})

    def _route(self, url: str) -> t.Callable[[str, t.Any, str], Response]:
        prefixes: list[tuple[str, t.Callable[[str, t.Any, str], Response]]] = [
            ("/acct/", self._account), ("/new-order", self._new_order), ("/authz/", self._authz_post),
            ("/chall/", self._challenge), ("/finalize/", self._finalize), ("/order/", self._order_get),
            ("/cert/", self._cert), ("/key-change", self._key_change),
        ]
        for prefix, handler in prefixes:
            if url.startswith(BASE + prefix):
                return handler
        return lambda u, p, k: self._problem(u, 404, "malformed", "not found")

    # ------------------------------------------------------------ accounts

    def _new_account(self, url: str, payload: dict[str, t.Any], protected: dict[str, t.Any]) -> Response:
        tp = _thumbprint(protected["jwk"])
        existing = self.accounts.get(tp)
        if existing:
            if existing["status"] == "deactivated":
                return self._problem(url, 401, "unauthorized", "Account has been deactivated")
            return self._reply(url, 200, existing["body"], {"Location": existing["url"]})
        if payload.get("onlyReturnExisting"):
            return self._problem(url, 400, "accountDoesNotExist", "No account exists with the provided key")
        if self.terms and not payload.get("termsOfServiceAgreed"):
            return self._problem(url, 403, "userActionRequired", "must agree to terms of service")
        if self.eab_keys:
            problem = self._check_eab(url, payload.get("externalAccountBinding"), protected["jwk"])
            if problem:
                return problem
        acct_url = f"{BASE}/acct/{self._id()}"
        body = {"status": "valid", "contact": payload.get("contact", []), "orders": f"{acct_url}/orders"}
        self.accounts[tp] = {"url": acct_url, "status": "valid", "body": body}
        self._account_keys[acct_url] = _key_from_jwk(protected["jwk"])
        return self._reply(url, 201, body, {"Location": acct_url})

    def _check_eab(self, url: str, eab: t.Any, account_jwk: dict[str, str]) -> Response | None:
        if not isinstance(eab, dict):
            return self._problem(url, 401, "externalAccountRequired", "EAB required")
        protected = json.loads(unb64u(eab["protected"]))
        mac_key = self.eab_keys.get(protected.get("kid"))
        if mac_key is None or protected.get("alg") != "HS256" or protected.get("url") != url:
            return self._problem(url, 401, "unauthorized", "bad EAB")
        expected = hmac.new(unb64u(mac_key), f"{eab['protected']}.{eab['payload']}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, unb64u(eab["signature"])):
            return self._problem(url, 401, "unauthorized", "bad EAB MAC")
        if json.loads(unb64u(eab["payload"])) != account_jwk:
            return self._problem(url, 401, "unauthorized", "EAB payload is not the account key")
        return None

    def _account(self, url: str, payload: t.Any, kid: str) -> Response:
        account = self.accounts_by_url(url)
        if kid != url or not account:
            return self._problem(url, 401, "unauthorized", "not your account")
        if payload:
            if "contact" in payload:
                account["body"]["contact"] = payload["contact"]
            if payload.get("status") == "deactivated":
                account["status"] = account["body"]["status"] = "deactivated"
        return self._reply(url, 200, account["body"])

    def _key_change(self, url: str, inner: t.Any, kid: str) -> Response:  # noqa: PLR0911
        """RFC 8555 section 7.3.5, checked as pebble and Boulder check it."""
        if not isinstance(inner, dict) or set(inner) != {"protected", "payload", "signature"}:
            return self._problem(url, 400, "malformed", "the keyChange payload must be a flattened JWS")
        protected = json.loads(unb64u(inner["protected"]))
        payload = json.loads(unb64u(inner["payload"]))
        self.key_changes.append((self._last_protected, protected, payload))
        if "jwk" not in protected or "kid" in protected:
            return self._problem(url, 400, "malformed", "inner JWS must carry a jwk and no kid")
        if "nonce" in protected:
            return self._problem(url, 400, "malformed", "inner JWS must not carry a nonce")
        if protected.get("url") != url:
            return self._problem(url, 400, "malformed", "JWS header parameter 'url' differs for inner and outer JWS.")
        new_key = _key_from_jwk(protected["jwk"])
        signed = f"{inner['protected']}.{inner['payload']}".encode()
        if not _verify_signature(new_key, protected["alg"], signed, unb64u(inner["signature"])):
            return self._problem(url, 400, "malformed", "inner JWS error: bad signature")
        if payload.get("account") != kid:
            return self._problem(url, 400, "malformed", "Key roll-over inner JWS body contains wrong account ID")
        old_tp = next(tp for tp, a in self.accounts.items() if a["url"] == kid)
        if _thumbprint(payload.get("oldKey") or {"kty": "EC", "crv": "", "x": "", "y": ""}) != old_tp:
            return self._problem(url, 400, "malformed", "Key roll-over inner JWS body JSON contains wrong old key")
        new_tp = _thumbprint(protected["jwk"])
        if new_tp == old_tp:
            return self._problem(url, 400, "malformed", "New and old key are identical")
        if new_tp in self.accounts:
            # pebble's answer: 409 with the other account's URL, and no body
            return self._reply(url, 409, None, {"Location": self.accounts[new_tp]["url"]})
        self.accounts[new_tp] = self.accounts.pop(old_tp)
        self._account_keys[kid] = new_key
        return self._reply(url, 200, self.accounts[new_tp]["body"])

    def _revoke(self, url: str, payload: t.Any, protected: dict[str, t.Any], kid: str | None) -> Response:  # noqa: PLR0911
        """RFC 8555 section 7.6: by the account that holds the certificate, or by the certificate's key."""
        der = unb64u(payload["certificate"])
        cert = next((c for c in self.issued if c.public_bytes(serialization.Encoding.DER) == der), None)
        reason = payload.get("reason")
        if reason is not None and reason not in self.revocation_reasons:
            return self._problem(url, 400, "badRevocationReason", f"Invalid revocation reason: {reason}")
        if cert is None:
            return self._problem(url, 404, "malformed", "Unable to find specified certificate.")
        if cert.serial_number in self.revoked:
            return self._problem(url, 400, "alreadyRevoked", "Certificate has already been revoked.")
        if kid is not None:
            if self.accounts_by_url(kid).get("status") != "valid":
                return self._problem(url, 401, "unauthorized", "Account is not valid")
            if self._cert_accounts.get(cert.serial_number) != kid:
                return self._problem(url, 403, "unauthorized",
                                     "The certificate being revoked is not associated with this account")
        else:
            fmt = serialization.PublicFormat.SubjectPublicKeyInfo
            given = _key_from_jwk(protected["jwk"]).public_bytes(serialization.Encoding.DER, fmt)
            if given != cert.public_key().public_bytes(serialization.Encoding.DER, fmt):
                return self._problem(url, 403, "unauthorized",
                                     "JWK embedded in revocation request must be the same public key as the cert")
        self.revoked[cert.serial_number] = reason
        return self._reply(url, 200)

    # ------------------------------------------------------------ orders

    def _new_order(self, url: str, payload: dict[str, t.Any], kid: str) -> Response:
        if self.rate_limited:
            return self._problem(url, 429, "rateLimited", "too many certificates already issued",
                                 headers={"Retry-After": self.retry_after})
        domains = [i["value"] for i in payload["identifiers"]]
        ips = [i["value"] for i in payload["identifiers"] if i["type"] == "ip"]
        assert all(i["type"] in ("dns", "ip") for i in payload["identifiers"]), payload
        rejected = [d for d in domains if d in self.reject_domains]
        if rejected:
            subs = [{"type": ERR + "rejectedIdentifier", "detail": "policy forbids", "identifier": {"type": "dns", "value": d}}
                    for d in rejected]
            return self._problem(url, 400, "rejectedIdentifier", "Error creating new order", subproblems=subs)
        if payload.get("replaces") and self.reject_replaces:
            return self._problem(url, *self.replaces_problem)
        if payload.get("profile") and payload["profile"] not in self.profiles:
            return self._problem(url, 400, "invalidProfile", f"profile {payload['profile']!r} is not known")
        order_id = self._id()
        authzs = []
        for domain in domains:
            authz = Authz(url=f"{BASE}/authz/{self._id()}", domain=domain, kind="ip" if domain in ips else "dns")
            self._authz[authz.url] = authz
            authzs.append(authz.url)
        order = Order(f"{BASE}/order/{order_id}", kid, domains, authzs, replaces=payload.get("replaces"),
                      profile=payload.get("profile"), ips=ips)
        self._orders[order.url] = order
        self.orders.append(order)
        return self._reply(url, 201, self._order_body(order), {"Location": order.url})

    def _order_body(self, order: Order) -> dict[str, t.Any]:
        if order.status == "pending" and all(self._authz[a].status == "valid" for a in order.authzs):
            order.status = "ready"
        if any(self._authz[a].status == "invalid" for a in order.authzs):
            order.status = "invalid"
        body: dict[str, t.Any] = {
            "status": order.status, "identifiers": [{"type": "ip" if d in order.ips else "dns", "value": d} for d in order.domains],
            "authorizations": order.authzs, "finalize": order.url.replace("/order/", "/finalize/"),
        }
        if order.cert_url:
            body["certificate"] = order.cert_url
        return body

    def _authz_body(self, authz: Authz) -> dict[str, t.Any]:
        challenge: dict[str, t.Any] = {"type": "http-01", "url": authz.url.replace("/authz/", "/chall/"),
                                       "token": "tok" + authz.url.rsplit("/", 1)[1], "status": authz.challenge_status}
        if authz.error:
            challenge["error"] = authz.error
        dns01 = {"type": "dns-01", "url": authz.url + "/dns", "token": "x", "status": "pending"}
        return {"status": authz.status, "identifier": {"type": authz.kind, "value": authz.domain},
                "challenges": [dns01, challenge]}

    def _authz_post(self, url: str, payload: t.Any, kid: str) -> Response:
        authz = self._authz[url]
        if authz.status == "pending" and authz.challenge_status == "processing":
            if authz.polls_left > 0:
                authz.polls_left -= 1
            else:
                self._validate(authz)
        return self._reply(url, 200, self._authz_body(authz))

    def _validate(self, authz: Authz) -> None:
        if authz.domain in self.fail_domains:
            authz.status = authz.challenge_status = "invalid"
            authz.error = {"type": ERR + "unauthorized", "status": 403,
                           "detail": f"Invalid response from http://{authz.domain}/.well-known/acme-challenge/x: 404"}
        else:
            authz.status = authz.challenge_status = "valid"

    def _challenge(self, url: str, payload: t.Any, kid: str) -> Response:
        authz = self._authz[url.replace("/chall/", "/authz/")]
        assert payload == {}, "a challenge is triggered with an empty object"
        if authz.challenge_status != "pending":  # as pebble and Boulder answer
            return self._problem(url, 400, "malformed", f"Cannot update challenge with status "
                                 f"{authz.challenge_status}, only status pending")
        authz.challenge_status = "processing"
        return self._reply(url, 200, self._authz_body(authz)["challenges"][1])

    def _order_get(self, url: str, payload: t.Any, kid: str) -> Response:
        order = self._orders[url]
        if order.status == "processing":
            if order.polls_left > 0:
                order.polls_left -= 1
                return self._reply(url, 200, self._order_body(order), {"Retry-After": "0"})
            order.status = "valid"
        return self._reply(url, 200, self._order_body(order))

    def _finalize(self, url: str, payload: dict[str, t.Any], kid: str) -> Response:
        order = self._orders[url.replace("/finalize/", "/order/")]
        if self._order_body(order)["status"] != "ready":
            return self._problem(url, 403, "orderNotReady", f"order is {order.status}")
        csr = x509.load_der_x509_csr(unb64u(payload["csr"]))
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = [d for d in order.domains if d not in order.ips]
        assert sorted(san.get_values_for_type(x509.DNSName)) == sorted(dns), (san, order.domains)
        assert sorted(str(a) for a in san.get_values_for_type(x509.IPAddress)) == sorted(order.ips), (san, order.ips)
        assert csr.is_signature_valid
        # As Let's Encrypt: the CN is the first DNS name, and a certificate for addresses only has none.
        subject = _name(dns[0]) if dns else x509.Name([])
        sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(a)) for a in order.ips]
        now = dt.datetime.now(dt.timezone.utc)
        leaf = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(self.inter.subject)
            .public_key(csr.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(days=self.validity_days))
            .add_extension(x509.SubjectAlternativeName(sans), critical=not dns)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.inter_key.public_key()), critical=False)
            .sign(self.inter_key, hashes.SHA256())
        )
        self.issued.append(leaf)
        self._cert_accounts[leaf.serial_number] = order.account
        cert_url = f"{BASE}/cert/{self._id()}"
        self._certs[cert_url] = pem(leaf) + pem(self.inter)
        self._certs[cert_url + "/1"] = pem(leaf) + pem(self.inter_cross)
        order.cert_url, order.status = cert_url, "processing"
        return self._reply(url, 200, self._order_body(order), {"Location": order.url, "Retry-After": "0"})

    def _cert(self, url: str, payload: t.Any, kid: str) -> Response:
        headers = {"Content-Type": "application/pem-certificate-chain"}
        if not url.endswith("/1"):
            headers["Link"] = f'<{url}/1>;rel="alternate", <{BASE}/dir>;rel="index"'
        return self._reply(url, 200, self._certs[url], headers)


def _hit(faults: dict[str, int], url: str) -> bool:
    """Count down the first fault whose URL part is in ``url``; whether one was left."""
    for part, left in faults.items():
        if part in url and left > 0:
            faults[part] = left - 1
            return True
    return False


def refused(url: str) -> requests.exceptions.ConnectionError:
    """What requests raises when nothing listens: the request never left."""
    reason = urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")
    return requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, url, reason))


def reset() -> requests.exceptions.ConnectionError:
    """What requests raises when the connection resets after the request was written."""
    return requests.exceptions.ConnectionError(
        urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset by peer")))


def _key_from_jwk(jwk: dict[str, str]) -> t.Any:
    if jwk["kty"] == "EC":
        curve = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}[jwk["crv"]]
        return ec.EllipticCurvePublicNumbers(
            int.from_bytes(unb64u(jwk["x"]), "big"), int.from_bytes(unb64u(jwk["y"]), "big"), curve
        ).public_key()
    return rsa.RSAPublicNumbers(int.from_bytes(unb64u(jwk["e"]), "big"), int.from_bytes(unb64u(jwk["n"]), "big")).public_key()


def _verify_signature(key: t.Any, alg: str, data: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        if alg.startswith("ES"):
            size = len(signature) // 2
            r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
            digest = {"ES256": hashes.SHA256(), "ES384": hashes.SHA384()}[alg]
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(digest))
        else:
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def _thumbprint(jwk: dict[str, str]) -> str:
    members = ("crv", "kty", "x", "y") if jwk["kty"] == "EC" else ("e", "kty", "n")
    text = json.dumps({k: jwk[k] for k in members}, sort_keys=True, separators=(",", ":"))
    return b64u(hashlib.sha256(text.encode()).digest())
