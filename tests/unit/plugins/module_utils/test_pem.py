"""Unit tests of _pem: parsing and checks (the atomic write: test_files.py)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import typing as t

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _pem
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import ConfigError, PemError

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_chain(
    domains: t.Sequence[str] = ("a.example",), key: t.Any = None, days: int = 90, start: dt.datetime = NOW
) -> tuple[bytes, t.Any, t.Any]:
    """(leaf + intermediate PEM, leaf key, root cert)."""
    root_key = ec.generate_private_key(ec.SECP256R1())
    inter_key = ec.generate_private_key(ec.SECP256R1())
    key = key or ec.generate_private_key(ec.SECP256R1())

    def build(subject: str, issuer: str, pub: t.Any, signer: t.Any, ca: bool, sans: t.Sequence[str] = ()) -> x509.Certificate:
        b = (
            x509.CertificateBuilder()
            .subject_name(_name(subject))
            .issuer_name(_name(issuer))
            .public_key(pub)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start - dt.timedelta(hours=1))
            .not_valid_after(start + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in sans]), critical=False)
        return b.sign(signer, hashes.SHA256())

    root = build("root", "root", root_key.public_key(), root_key, True)
    inter = build("inter", "root", inter_key.public_key(), root_key, True)
    leaf = build(domains[0], "inter", key.public_key(), inter_key, False, domains)
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, inter))
    return pem, key, root


@pytest.mark.parametrize(
    ("key_type", "kind", "size"),
    [("ec256", ec.EllipticCurvePrivateKey, 256), ("ec384", ec.EllipticCurvePrivateKey, 384), ("rsa2048", rsa.RSAPrivateKey, 2048)],
)
def test_generate_and_reload_keys(key_type: str, kind: type, size: int) -> None:
    key = _pem.generate_private_key(key_type)
    assert isinstance(key, kind)
    assert key.key_size == size
    again = _pem.load_private_key(_pem.private_key_to_pem(key))
    assert _pem.key_type_of(again) == key_type


def test_unknown_key_type() -> None:
    with pytest.raises(ConfigError, match="unknown key type"):
        _pem.generate_private_key("dsa1024")


def test_sec1_key_as_acme_sh_writes_it() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    sec1 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    assert b"BEGIN EC PRIVATE KEY" in sec1
    assert _pem.key_type_of(_pem.load_private_key(sec1)) == "ec256"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "no PEM private key"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "cannot be parsed"),
    ],
)
def test_bad_keys_do_not_echo_input(data: bytes, message: str) -> None:
    with pytest.raises(PemError, match=message) as err:
        _pem.load_private_key(data)
    assert "AAAA" not in str(err.value)


def test_small_rsa_refused() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(PemError, match="too small"):
        _pem.load_private_key(_pem.private_key_to_pem(key))


@pytest.mark.parametrize(("serial", "text"), [(1, "01"), (0xABC, "0ABC"), (0x1234, "1234")])
def test_serial_hex(serial: int, text: str) -> None:
    assert _pem.serial_hex(serial) == text


@pytest.mark.parametrize(("a", "b", "same"), [("0ABC", "abc", True), ("0a:bc", "ABC", True), ("ABD", "ABC", False)])
def test_same_serial(a: str, b: str, same: bool) -> None:
    assert _pem.same_serial(a, b) is same


@pytest.mark.parametrize(
    ("domain", "sans", "covered"),
    [
        ("a.example", ["a.example"], True),
        ("A.Example.", ["a.example"], True),
        ("x.a.example", ["*.a.example"], True),
        ("y.x.a.example", ["*.a.example"], False),
        ("a.example", ["*.a.example"], False),
        ("b.example", ["a.example"], False),
        # IP addresses (RFC 8738): the same address only, whatever its spelling
        ("192.0.2.7", ["192.0.2.7"], True),
        ("2001:db8::1", ["2001:db8::1"], True),
        ("2001:DB8:0::1", ["2001:db8::1"], True),
        ("[::1]", ["::1"], True),
        ("192.0.2.7", ["192.0.2.8", "a.example"], False),
        ("192.0.2.7", ["*.0.2.7"], False),  # a wildcard never covers an address
        ("::1", ["0:0:0:0:0:0:0:2"], False),
    ],
)
def test_domain_covered(domain: str, sans: list[str], covered: bool) -> None:
    assert _pem.domain_covered(domain, sans) is covered


def test_bundle_round_trip_and_info() -> None:
    chain, key, _ = make_chain(["a.example", "www.a.example"])
    data = _pem.bundle_pem(chain, key)
    assert data.index(b"CERTIFICATE") < data.index(b"PRIVATE KEY")
    bundle = _pem.parse_bundle(data)
    _pem.check_bundle(bundle, ["www.a.example"], now=NOW)
    info = bundle.info()
    assert info.domains == ("a.example", "www.a.example")
    assert info.key_type == "ec256"
    assert 89 < info.days_left(NOW) < 91
    result = info.as_dict(NOW)
    assert result["not_after"].endswith("Z")
    assert "PRIVATE" not in repr(bundle)


def _leaf_with(names: t.Sequence[x509.GeneralName], cn: str | None = None) -> tuple[bytes, t.Any]:
    """(bundle PEM, certificate) of a self-signed leaf with exactly these SANs."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn) if cn else x509.Name([]))
        .issuer_name(_name("issuer"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(hours=1))
        .not_valid_after(NOW + dt.timedelta(days=6))
        .add_extension(x509.SubjectAlternativeName(names), critical=cn is None)
        .sign(key, hashes.SHA256())
    )
    return _pem.bundle_pem(cert.public_bytes(serialization.Encoding.PEM), key), cert


def _ip(text: str) -> x509.IPAddress:
    return x509.IPAddress(ipaddress.ip_address(text))


@pytest.mark.parametrize(
    ("sans", "names"),
    [
        ([x509.DNSName("A.Example"), x509.DNSName("www.a.example")], ("a.example", "www.a.example")),
        ([_ip("192.0.2.7")], ("192.0.2.7",)),
        ([_ip("2001:0db8:0:0::1")], ("2001:db8::1",)),  # RFC 5952 form, as names.normalize_domain writes it
        ([_ip("::1"), _ip("127.0.0.1")], ("::1", "127.0.0.1")),
        # the certificate's order, DNS and IP mixed
        ([x509.DNSName("a.example"), _ip("192.0.2.7"), x509.DNSName("b.example")], ("a.example", "192.0.2.7", "b.example")),
        # an address in a dNSName names nothing a client matches (RFC 5280 section 4.2.1.6)
        ([x509.DNSName("192.0.2.7"), x509.DNSName("a.example")], ("a.example",)),
        # other kinds are not names HTTP-01 validated
        ([x509.RFC822Name("ops@a.example"), x509.DNSName("a.example")], ("a.example",)),
    ],
)
def test_san_names(sans: list[x509.GeneralName], names: tuple[str, ...]) -> None:
    data, cert = _leaf_with(sans, cn="x")
    assert _pem.san_names(cert) == names
    assert _pem.parse_bundle(data).info().domains == names


def test_ip_certificate_without_cn() -> None:
    """What Let's Encrypt issues for addresses: an empty subject, the names in the SANs only."""
    data, _ = _leaf_with([_ip("127.0.0.1"), _ip("::1")])
    bundle = _pem.parse_bundle(data)
    info = bundle.info()
    assert info.domains == ("127.0.0.1", "::1") and info.subject == ""
    _pem.check_bundle(bundle, ["127.0.0.1", "::1"], now=NOW)
    _pem.check_bundle(bundle, ["[::1]", "0:0:0:0:0:0:0:1"], now=NOW)
    with pytest.raises(PemError, match=r"does not cover 192\.0\.2\.7"):
        _pem.check_bundle(bundle, ["127.0.0.1", "192.0.2.7"], now=NOW)


def test_address_in_a_dns_san_does_not_cover_the_address() -> None:
    data, _ = _leaf_with([x509.DNSName("192.0.2.7")], cn="192.0.2.7")
    with pytest.raises(PemError, match=r"does not cover 192\.0\.2\.7"):
        _pem.check_bundle(_pem.parse_bundle(data), ["192.0.2.7"], now=NOW)


@pytest.mark.parametrize(
    ("text", "normal"),
    [("192.0.2.7", "192.0.2.7"), ("2001:DB8::0:1", "2001:db8::1"), ("[::1]", "::1"), ("a.example", None),
     ("192.0.2.256", None), ("", None)],
)
def test_ip_text(text: str, normal: str | None) -> None:
    assert _pem.ip_text(text) == normal


def test_check_bundle_refusals() -> None:
    chain, key, _ = make_chain()
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(PemError, match="does not match"):
        _pem.check_bundle(_pem.parse_bundle(_pem.bundle_pem(chain, other)), now=NOW)
    bundle = _pem.parse_bundle(_pem.bundle_pem(chain, key))
    with pytest.raises(PemError, match="expired"):
        _pem.check_bundle(bundle, now=NOW + dt.timedelta(days=100))
    with pytest.raises(PemError, match=r"does not cover b\.example"):
        _pem.check_bundle(bundle, ["b.example"], now=NOW)
    certs = _pem.load_certificates(chain)
    reversed_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in reversed(certs))
    with pytest.raises(PemError, match=r"out of order|does not match"):
        _pem.check_bundle(_pem.parse_bundle(_pem.bundle_pem(reversed_pem, key)), now=NOW)
    with pytest.raises(PemError, match=r"no private key"):
        _pem.parse_bundle(chain)


def test_a_bundle_computes_its_leaf_facts_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checking the leaf computes its facts; info() then hands those out (a deploy parses thousands)."""
    from tests.unit.plugins.module_utils._haproxy.testcerts import bundle as make_bundle

    data = make_bundle(["once.test"])
    calls: list[int] = []
    real = _pem._facts
    monkeypatch.setattr(_pem, "_facts", lambda cert: calls.append(1) or real(cert))
    parsed = _pem.parse_bundle(data)
    first = len(calls)
    assert parsed.info().domains == ("once.test",) and parsed.info() is parsed.info()
    assert len(calls) == first <= 2, "the leaf once, the chain once unless seen already"
