# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The parsers of what comes from outside, under generated input (hypothesis).

HAProxy's replies, PEM bundles and keys, ACME problem documents, ARI responses and
the names a user gives: whatever the input, each either returns or raises one of
the collection's own errors (HaproxyAcmeError), never a TypeError, ValueError,
OverflowError or RecursionError that would end a run with a traceback.

Each property is bounded (``max_examples``) so the file stays within seconds; no example
database is written. The examples differ from run to run, except in make test (DERANDOMIZE).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import string
import typing as t

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa, x25519
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _pem
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import ari, names, problems
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import (
    AcmeProblem,
    ConfigError,
    HaproxyAcmeError,
    PemError,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import parse
from tests.unit.plugins.module_utils._haproxy.testcerts import authority

T = t.TypeVar("T")


#: In make test (scripts/run-tests.sh sets FUZZ_DERANDOMIZE) the examples are the same on every
#: run, so that the gate passes or fails by the code alone; elsewhere (make unit, pytest) each run
#: draws new ones, and a failure prints the blob that replays it (@reproduce_failure).
DERANDOMIZE = bool(os.environ.get("FUZZ_DERANDOMIZE"))


def bounded(examples: int) -> t.Callable[[T], T]:
    return t.cast(t.Callable[[T], T], settings(
        max_examples=examples, deadline=None, database=None, derandomize=DERANDOMIZE, print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    ))


def own_errors_only(function: t.Callable[..., T], *args: t.Any, **kwargs: t.Any) -> T | HaproxyAcmeError:
    """The result, or the collection's error; anything else propagates and fails the property."""
    try:
        return function(*args, **kwargs)
    except HaproxyAcmeError as exc:
        assert isinstance(exc.msg, str) and exc.msg
        return exc


# ------------------------------------------------------------------ HAProxy's replies

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
FIELDS = ["Filename", "Status", "Serial", "notBefore", "notAfter", "Subject Alternative Name", "Algorithm",
          "SHA1 FingerPrint", "Subject", "Issuer", "Chain Subject", "Chain Issuer", "Chain Filename", "Pid"]
VERBS = ["new ssl cert", "set ssl cert", "commit ssl cert", "abort ssl cert", "del ssl cert", "add ssl crt-list",
         "del ssl crt-list", "show ssl cert", "show ssl crt-list", "show info", "frobnicate"]
NUMBERISH = st.one_of(st.integers(-10, 99999).map(str), st.text("0123456789.+-eEinfa²٣", max_size=8))
ASN1_TIME = st.builds(
    lambda month, day, clock, year, zone: f"{month} {day} {clock} {year}{zone}",
    st.sampled_from([*MONTHS, "Foo", ""]), NUMBERISH,
    st.one_of(st.builds(lambda h, m, s: f"{h}:{m}:{s}", NUMBERISH, NUMBERISH, NUMBERISH), NUMBERISH),
    NUMBERISH, st.sampled_from([" GMT", "", " UTC", " GMT extra"]),
)
SANS = st.lists(st.one_of(st.text(max_size=20).map("DNS:".__add__), st.text(max_size=20)), max_size=5).map(", ".join)
VALUE = st.one_of(st.text(max_size=40), ASN1_TIME, SANS, st.text(string.hexdigits + ":", max_size=40))
KNOWN = st.sampled_from([
    "Operations on certificates are currently locked!", "The ongoing transaction is about '/etc/haproxy/certs/a.pem'",
    "The ongoing transaction is about '", "Transaction created for certificate /c/a.pem!", "Success!",
    "New empty certificate store '/c/a.pem'!", "Permission denied", "Can't allocate memory!",
    "Can't display the certificate", "Unknown command", "Couldn't", "# transaction", "# filename", "*/c/a.pem",
    "/c/a.pem:12 [alpn h2] a.example", "Entry '/c/a.pem' deleted in crtlist '/c'!", "+ ", "> ",
])
LINE = st.one_of(
    st.builds(lambda key, sep, value: f"{key}{sep}{value}", st.one_of(st.sampled_from(FIELDS), st.text(max_size=12)),
              st.sampled_from([": ", ":", " : ", "", "::"]), VALUE),
    st.text(max_size=60), KNOWN, st.builds("# {}".format, st.text(max_size=15)),
)
REPLY = st.lists(LINE, max_size=10).map("\n".join)


@bounded(150)
@given(REPLY, st.sampled_from(VERBS), st.one_of(st.none(), st.text(max_size=20)))
def test_error_replies(reply: str, verb: str, name: str | None) -> None:
    result = own_errors_only(parse.raise_for_reply, verb, reply, name)
    assert result == reply or isinstance(result, parse.RuntimeApiError)
    assert isinstance(parse.reply_error(verb, reply, name), parse.RuntimeApiError)
    for check in (parse.transaction_of, parse.open_transaction):
        found = check(reply)
        assert found is None or isinstance(found, str)
    assert isinstance(parse.is_not_found(reply), bool)


@bounded(120)
@given(REPLY)
@example("Name: HAProxy\nPid: ²")  # found: '²'.isdigit() is True, int('²') raises
def test_show_ssl_cert_replies(reply: str) -> None:
    listing = parse.parse_cert_list(reply)
    assert all(isinstance(n, str) and n for n in listing.names)
    fields = parse.parse_fields(reply)
    assert all(isinstance(v, (str, list)) for v in fields.values())
    pid = parse.parse_pid(reply)  # show info
    assert pid is None or pid >= 0
    detail = own_errors_only(parse.parse_cert_detail, reply)
    if isinstance(detail, parse.RuntimeCert):
        assert detail.serial == detail.serial.upper()
        for when in (detail.not_before, detail.not_after):
            assert when is None or when.utcoffset() == dt.timedelta(0)


@bounded(150)
@given(st.one_of(ASN1_TIME, st.text(max_size=40)))
@example("Jan 0 0:0:1E10 0 GMT")  # found: OverflowError from datetime()
@example("Sep  8 inf:39:00 2048 GMT")
def test_asn1_times(value: str) -> None:
    when = parse.parse_time(value)
    assert when is None or when.tzinfo is dt.timezone.utc


@bounded(100)
@given(SANS)
def test_subject_alternative_names(value: str) -> None:
    assert all(name == name.lower() for name in parse.parse_sans(value))


@bounded(100)
@given(REPLY, st.booleans())
def test_crt_list_replies(reply: str, numbered: bool) -> None:
    assert all(isinstance(n, str) and n for n in parse.parse_crt_lists(reply))
    for entry in parse.parse_crt_list(reply, numbered):
        assert entry.line is None or (numbered and entry.line >= 0)


# ------------------------------------------------------------------ PEM bundles and keys

AUTHORITY = authority("Fuzz")
LEAF, LEAF_KEY = AUTHORITY.issue(["a.example", "192.0.2.1"])
CERT_DER = [LEAF.public_bytes(serialization.Encoding.DER), AUTHORITY.cert.public_bytes(serialization.Encoding.DER)]
KEYS = [LEAF_KEY, ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP521R1()),
        rsa.generate_private_key(65537, 1024), ed25519.Ed25519PrivateKey.generate(),
        x25519.X25519PrivateKey.generate(), dsa.generate_private_key(1024)]
KEY_DER = [k.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
           for k in KEYS]
SEC1_DER = LEAF_KEY.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption())
LABELS = ["CERTIFICATE", "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY"]
EC_PUBLIC_KEY, P256 = bytes.fromhex("2a8648ce3d0201"), bytes.fromhex("2a8648ce3d030107")  # the OIDs' DER


def replaced(der: bytes, old: bytes, new: bytes) -> bytes:
    assert old in der
    return der.replace(old, new, 1)


def armor(label: str, der: bytes, newline: bytes = b"\n") -> bytes:
    body = base64.encodebytes(der).replace(b"\n", newline)
    return b"-----BEGIN " + label.encode() + b"-----" + newline + body + b"-----END " + label.encode() + b"-----" + newline


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` with a few bytes changed, cut or inserted (the DER of a real certificate or key)."""
    data = bytearray(original)
    for _ in range(draw(st.integers(0, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        if action == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif action == "cut":
            del data[at:at + draw(st.integers(1, 8))]
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[at:]
    return bytes(data)


BLOCK = st.one_of(
    st.builds(armor, st.just("CERTIFICATE"), st.sampled_from(CERT_DER).flatmap(mutated), st.sampled_from([b"\n", b"\r\n"])),
    st.builds(armor, st.sampled_from(LABELS[1:]), st.sampled_from([*KEY_DER, SEC1_DER]).flatmap(mutated)),
    st.builds(armor, st.sampled_from(LABELS), st.binary(max_size=300)),
    st.sampled_from(CERT_DER).map(lambda der: armor("CERTIFICATE", der)),
    st.sampled_from(KEY_DER).map(lambda der: armor("PRIVATE KEY", der)),
    st.builds(lambda label, text: b"-----BEGIN " + label.encode() + b"-----\n" + text + b"\n-----END " + label.encode()
              + b"-----\n", st.sampled_from(LABELS), st.binary(max_size=80)),
    st.binary(max_size=120),
    st.just(b"# acme-profile: classic\n"),
)
BUNDLE = st.lists(BLOCK, max_size=5).map(b"".join)
# Found by this file: a PKCS#8 key of an unknown algorithm or curve raised UnsupportedAlgorithm; a
# certificate whose issuer name is malformed loaded, then raised ValueError when first read.
UNKNOWN_ALGORITHM_KEY = armor("PRIVATE KEY", replaced(KEY_DER[0], EC_PUBLIC_KEY, EC_PUBLIC_KEY[:-1] + b"\x09"))
UNKNOWN_CURVE_KEY = armor("PRIVATE KEY", replaced(KEY_DER[0], P256, P256[:-1] + b"\x05"))
ORGANIZATION = b"\x06\x03U\x04\n"  # the OID 2.5.4.10; the string's tag follows (13 is no string type)
_AT = CERT_DER[0].index(ORGANIZATION) + len(ORGANIZATION)
BAD_ISSUER_CERT = armor("CERTIFICATE", CERT_DER[0][:_AT] + b"\x0d" + CERT_DER[0][_AT + 1:])
UNKNOWN_KEY_CERT = armor("CERTIFICATE", replaced(CERT_DER[0], EC_PUBLIC_KEY, EC_PUBLIC_KEY[:-1] + b"\x09"))


@bounded(150)
@given(BUNDLE, st.booleans())
@example(UNKNOWN_KEY_CERT + armor("PRIVATE KEY", KEY_DER[0]), True)
@example(BAD_ISSUER_CERT + armor("PRIVATE KEY", KEY_DER[0]), True)
def test_bundles(data: bytes, require_key: bool) -> None:
    bundle = own_errors_only(_pem.parse_bundle, data, require_key)
    if isinstance(bundle, _pem.Bundle):
        assert bundle.certificates and (bundle.key is not None or not require_key)
        info = own_errors_only(bundle.info)  # what the renewal decision reads next
        assert isinstance(info, (_pem.CertInfo, PemError))
        assert isinstance(own_errors_only(_pem.check_bundle, bundle, ["a.example"]), (type(None), PemError))


@bounded(150)
@given(BUNDLE)
@example(BAD_ISSUER_CERT)
@example(UNKNOWN_KEY_CERT)
def test_certificates(data: bytes) -> None:
    certs = own_errors_only(_pem.load_certificates, data)
    if isinstance(certs, list):
        assert certs and all(isinstance(c, x509.Certificate) for c in certs)
        for cert in certs:
            own_errors_only(_pem.cert_info, cert)


@bounded(150)
@given(BUNDLE)
@example(UNKNOWN_ALGORITHM_KEY)
@example(UNKNOWN_CURVE_KEY)
def test_private_keys(data: bytes) -> None:
    key = own_errors_only(_pem.load_private_key, data)
    if not isinstance(key, HaproxyAcmeError):
        assert _pem.key_type_of(key) in _pem.KEY_TYPES
    else:
        assert b"PRIVATE" not in key.msg.encode()  # messages never quote the input: it may be key material


# ------------------------------------------------------------------ ACME problem documents

JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=10), children, max_size=4)),
    max_leaves=8,
)
PROBLEM_TYPE = st.one_of(st.sampled_from(["urn:ietf:params:acme:error:badNonce", "urn:ietf:params:acme:error:",
                                          "about:blank", ""]), JSON)
PROBLEM = st.fixed_dictionaries({"type": PROBLEM_TYPE}, optional={
    "detail": JSON,
    "status": JSON,
    "subproblems": st.one_of(JSON, st.lists(st.fixed_dictionaries(
        {}, optional={"type": PROBLEM_TYPE, "detail": JSON, "identifier": st.one_of(
            JSON, st.fixed_dictionaries({"type": JSON, "value": JSON}))}), max_size=3)),
})
BODY = st.one_of(
    PROBLEM.map(lambda doc: json.dumps(doc).encode()),
    JSON.map(lambda doc: json.dumps(doc).encode()),
    st.binary(max_size=300),
    st.integers(1, 200_000).map(lambda depth: b"[" * depth),  # nesting deeper than Python's recursion limit
    st.integers(1, 5000).map(lambda digits: b'{"type": "x", "detail": ' + b"7" * digits + b"}"),
)


@bounded(150)
@example(b"[" * 100_000, 400, "u", None, None)  # found: RecursionError from json.loads
@example(b"", 429, "u", float("inf"), float("inf"))  # found: OverflowError from int(inf) in the message
@given(BODY, st.integers(100, 599), st.text(max_size=30),
       st.one_of(st.none(), st.floats(0, 1e7), st.sampled_from([1e300, float("inf")])),
       st.one_of(st.none(), st.floats(0, 4e9), st.sampled_from([1e300, float("inf")])))
def test_problem_documents(body: bytes, status: int, url: str, retry_after: float | None, retry_at: float | None) -> None:
    problem = problems.parse_problem(body)
    assert problem is None or isinstance(problem.get("type"), str)
    if problem is not None:
        assert isinstance(problems.describe(problem), str)
    error = problems.problem_error(status, body, url, retry_after=retry_after, retry_at=retry_at)
    assert isinstance(error, AcmeProblem) and isinstance(error.msg, str) and error.status == status


# ------------------------------------------------------------------ ARI responses

TWO = st.integers(0, 99).map("{:02d}".format)


def two(low: int, high: int) -> st.SearchStrategy[str]:
    """Mostly a valid field, sometimes any two digits."""
    return st.one_of(st.integers(low, high).map("{:02d}".format), TWO)


RFC3339 = st.builds(
    lambda year, month, day, hour, minute, second, fraction, zone: f"{year}-{month}-{day}T{hour}:{minute}:{second}{fraction}{zone}",
    st.one_of(st.sampled_from(["0000", "0001", "1970", "2026", "9999"]), st.integers(0, 9999).map("{:04d}".format)),
    two(1, 12), two(1, 28), two(0, 23), two(0, 59), two(0, 59),
    st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=12).map(".".__add__)),
    st.one_of(st.sampled_from(["Z", "z", "+00:00", "-00:00", "+23:59", "-23:59", "+24:00", "+99:99"]),
              st.builds("{}{}:{}".format, st.sampled_from("+-"), two(0, 23), two(0, 59))),
)
TIME = st.one_of(RFC3339, st.text(max_size=30), JSON)


@bounded(200)
@given(TIME)
@example("0001-01-01T00:00:00+01:00")  # found: OverflowError from astimezone()
@example("9999-12-31T23:59:59-01:00")
def test_ari_times(value: t.Any) -> None:
    when = ari.parse_time(value)
    assert when is None or when.tzinfo is dt.timezone.utc


@bounded(80)
@given(st.one_of(
    st.fixed_dictionaries({"suggestedWindow": st.fixed_dictionaries({"start": TIME, "end": TIME})},
                          optional={"explanationURL": JSON}),
    st.dictionaries(st.sampled_from(["suggestedWindow", "explanationURL", "x"]), JSON, max_size=3),
))
def test_ari_windows(data: dict[str, t.Any]) -> None:
    window = ari.parse_window(data)
    if window is not None:
        assert window.start <= window.end
        assert window.explanation_url is None or isinstance(window.explanation_url, str)
        assert window.start <= window.renewal_time("a.b") <= window.end


# ------------------------------------------------------------------ names

DNS_ISH = st.from_regex(r"\A[*]?([A-Za-z0-9_-]{0,70}\.){0,5}[A-Za-z0-9-]{0,70}[.]{0,2}\Z")
ADDRESS = st.one_of(st.ip_addresses().map(str), st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
                    st.ip_addresses(v=6).map(lambda a: f"{a}%eth0"), st.ip_addresses(v=4).map(lambda a: f"::ffff:{a}"))
DOMAIN = st.one_of(DNS_ISH, ADDRESS, st.text(max_size=40), st.text(string.printable, max_size=300),
                   st.integers(), st.none(), st.lists(st.text(max_size=5), max_size=2))


@bounded(200)
@given(DOMAIN, st.one_of(st.none(), st.text(max_size=10)))
def test_domains(domain: t.Any, cert_name: str | None) -> None:
    name = own_errors_only(names.normalize_domain, domain, cert_name)
    if isinstance(name, ConfigError):
        assert name.msg.startswith("invalid domain ")  # the issuer puts the certificate's name first, once
        return
    assert names.normalize_domain(name) == name  # the normal form is a fixed point
    assert name == name.lower() and name.isascii() and len(name) <= names.MAX_NAME_LENGTH
    assert not any(c.isspace() or not c.isprintable() for c in name) and "*" not in name
    assert names.identifier(name)["type"] == ("ip" if names.is_ip_address(name) else "dns")


CERT_NAME = st.one_of(
    st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.@+=-]{0,20}\Z").flatmap(
        lambda good: st.sampled_from([good, good + "\n", good + ".pem", "." + good, good + "/x", good + " x"])),
    st.text(max_size=30), st.integers(), st.none(),
)


@bounded(200)
@given(CERT_NAME)
@example("0\n")  # found: accepted, '$' matching before the final newline
def test_certificate_names(value: t.Any) -> None:
    name = own_errors_only(names.check_cert_name, value)
    if isinstance(name, ConfigError):
        return
    # It becomes <cert_dir>/<name>.pem and an argument of HAProxy's CLI.
    assert isinstance(name, str) and name and len(name) <= 200
    assert not any(c.isspace() or not c.isprintable() for c in name), repr(name)
    assert "/" not in name and not name.startswith(".") and not name.endswith(".pem")


# ------------------------------------------------------------------ what the properties found, as plain cases


def test_what_fuzzing_found() -> None:
    for key in (UNKNOWN_ALGORITHM_KEY, UNKNOWN_CURVE_KEY):
        error = own_errors_only(_pem.load_private_key, key)
        assert isinstance(error, PemError)
        assert error.msg in ("private key: unusable private key (its algorithm or curve is not supported)",
                             "private key: unusable private key (it cannot be parsed)")  # cryptography 38
    error = own_errors_only(_pem.load_certificates, BAD_ISSUER_CERT)
    assert isinstance(error, PemError) and error.msg.startswith("certificate #1 of the bundle cannot be parsed: ")
    error = own_errors_only(_pem.check_bundle, _pem.parse_bundle(UNKNOWN_KEY_CERT + armor("PRIVATE KEY", KEY_DER[0])))
    assert isinstance(error, PemError) and error.msg == "the private key does not match the certificate"
    assert problems.parse_problem(b"[" * 100_000) is None
    assert problems.problem_error(400, b'{"type": "x", "subproblems": true}', "u").subproblems == []
    assert ari.parse_time("0001-01-01T00:00:00+01:00") is None
    assert parse.parse_time("Jan 1 0:0:1E10 2020 GMT") is None
    assert parse.parse_pid("Pid: ²") is None and parse.parse_pid("Pid: 4711") == 4711
    assert isinstance(own_errors_only(names.check_cert_name, "shop\n"), ConfigError)
