# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bad inputs, and the exact message a user gets for each.

Three doors, each taken the way a user takes it:

* the four modules through their real ``main()`` (the CA and HAProxy are the fakes of
  the unit tests; a refused input must not reach either);
* the roles' preflight asserts, run by ansible-playbook on localhost: one play per
  case, all in one run, each play's failure message collected;
* the host renewal job through its ``main()`` with a bad JSON configuration.

``{tmp}`` in an input or an expected message stands for the test's directory. A case
whose expected message ends in ``...`` asserts that prefix; every other one, the
whole message.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _hostjob
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.transport import Transport
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._lock import LOCK_NAME
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import private_key_to_pem
from ansible_collections.tlsops.haproxy_acme.plugins.modules import (
    acme_account,
    acme_stateless_order,
    haproxy_runtime_cert,
    haproxy_runtime_cert_info,
)
from tests.unit.conftest import ModuleMain
from tests.unit.plugins.module_utils._acme.fake_acme import DIRECTORY_URL, FakeAcme
from tests.unit.plugins.module_utils._haproxy.fake_haproxy import FakeHaproxy
from tests.unit.plugins.module_utils._haproxy.testcerts import bundle, expired_bundle, mismatched_bundle

ROOT = Path(__file__).resolve().parents[2]
ALIASES = "buypass, buypass_test, google, google_test, letsencrypt, letsencrypt_test, zerossl"
NAME_RULE = "use letters, digits and . _ - @ + = (no slash, no leading dot, no whitespace)"


@dataclass(frozen=True)
class Case:
    id: str
    args: dict[str, t.Any]
    message: str
    setup: t.Callable[[Path], object] | None = field(default=None, compare=False)


def _fill(value: t.Any, tmp: Path) -> t.Any:
    if isinstance(value, str):
        return value.replace("{tmp}", str(tmp))
    if isinstance(value, list):
        return [_fill(v, tmp) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, tmp) for k, v in value.items()}
    return value


def check(message: str, expected: str) -> None:
    if expected.endswith("..."):
        assert message.startswith(expected[:-3]), message
    else:
        assert message == expected


def _key_file(key: t.Any) -> t.Callable[[Path], object]:
    def write(tmp: Path) -> object:
        return (tmp / "bad.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return write


def _encrypted_key(tmp: Path) -> object:
    key = ec.generate_private_key(ec.SECP256R1())
    return (tmp / "bad.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret")))


# ---------------------------------------------------------------- modules: the ACME side


@pytest.fixture
def fake_ca(monkeypatch: pytest.MonkeyPatch) -> FakeAcme:
    ca = FakeAcme()
    monkeypatch.setattr(Transport, "_new_session", staticmethod(lambda verify, pool_size: ca))
    return ca


@pytest.fixture
def acme_base(tmp_path: Path) -> dict[str, t.Any]:
    key_path = tmp_path / "account.key"
    key_path.write_bytes(private_key_to_pem(ec.generate_private_key(ec.SECP256R1())))
    (tmp_path / "certs").mkdir()
    return {"directory": DIRECTORY_URL, "account_key_path": str(key_path), "terms_agreed": True}


HTTP = ("ACME directory 'http://ca.test/dir' is plain http://: RFC 8555 section 6.1 requires HTTPS; "
        "give the CA's https:// directory URL")

ACCOUNT_CASES = [
    Case("http-directory", {"directory": "http://ca.test/dir"}, HTTP),
    Case("unknown-alias", {"directory": "lets_encrypt"},
         f"unknown ACME directory 'lets_encrypt': use one of {ALIASES} or an https:// URL"),
    Case("url-without-host", {"directory": "https:///dir"},
         f"unknown ACME directory 'https:///dir': use one of {ALIASES} or an https:// URL"),
    Case("key-is-junk", {"account_key_path": "{tmp}/bad.key"}, "account key {tmp}/bad.key: no PEM private key found",
         setup=lambda tmp: (tmp / "bad.key").write_text("junk")),
    Case("key-is-a-directory", {"account_key_path": "{tmp}"}, "account key {tmp} is a directory"),
    Case("key-ed25519", {"account_key_path": "{tmp}/bad.key"},
         "account key {tmp}/bad.key: only EC (P-256, P-384) and RSA keys are supported",
         setup=_key_file(ed25519.Ed25519PrivateKey.generate())),
    Case("key-rsa-1024", {"account_key_path": "{tmp}/bad.key"},
         "account key {tmp}/bad.key: RSA key of 1024 bits is too small (2048 at least)",
         setup=_key_file(rsa.generate_private_key(65537, 1024))),
    Case("key-encrypted", {"account_key_path": "{tmp}/bad.key"},
         "account key {tmp}/bad.key: unusable private key (it is encrypted)", setup=_encrypted_key),
    Case("key-content-junk", {"account_key_path": None, "account_key_content": "not a key"},
         "account_key_content: no PEM private key found"),
    Case("key-dir-missing", {"account_key_path": "{tmp}/nowhere/account.key"},
         "cannot create account key {tmp}/nowhere/account.key: {tmp}/nowhere does not exist"),
    Case("email", {"email": "ops at example.com"}, "invalid email address 'ops at example.com'"),
    Case("request-timeout", {"request_timeout": 0}, "request_timeout must be a positive number of seconds, not 0.0"),
    Case("eab-half", {"eab_kid": "kid"}, "parameters are required together: eab_kid, eab_hmac_key"),
]


@pytest.mark.parametrize("case", ACCOUNT_CASES, ids=lambda c: c.id)
def test_acme_account(case: Case, fake_ca: FakeAcme, acme_base: dict[str, t.Any], tmp_path: Path,
                      module_main: ModuleMain) -> None:
    if case.setup:
        case.setup(tmp_path)
    args = {k: v for k, v in {**acme_base, **_fill(case.args, tmp_path)}.items() if v is not None}
    result = module_main(acme_account, **args)
    assert result.get("failed"), result
    check(result["msg"], _fill(case.message, tmp_path))
    assert fake_ca.requests == []


ORDER_CASES = [
    Case("certificates-empty", {"certificates": []}, "certificates is empty: give at least one {name, domains}"),
    Case("domains-empty", {"domains": []}, "domains is empty: give at least one DNS name or IP address"),
    Case("entry-without-name-or-domains", {"certificates": [{"domains": []}]},
         "certificates[0] has no name and no domains: give at least one DNS name or IP address"),
    Case("entry-without-domains", {"certificates": [{"name": "shop", "domains": []}]},
         "certificate 'shop' (no domains): no domains given"),
    Case("wildcard", {"domains": ["*.example.test"]},
         "certificate '*.example.test' (*.example.test): invalid domain '*.example.test': "
         "wildcards cannot be validated with HTTP-01 (they need DNS-01)"),
    Case("one-label", {"name": "local", "domains": ["localhost"]},
         "certificate 'local' (localhost): invalid domain 'localhost': needs at least two labels (a public DNS name)"),
    Case("space", {"name": "x", "domains": ["exa mple.test"]},
         "certificate 'x' (exa mple.test): invalid domain 'exa mple.test': contains whitespace or control characters"),
    Case("unicode", {"name": "x", "domains": ["bücher.example"]},
         "certificate 'x' (bücher.example): invalid domain 'bücher.example': not ASCII: use its punycode (xn--) form"),
    Case("underscore", {"name": "x", "domains": ["under_score.example"]},
         "certificate 'x' (under_score.example): invalid domain 'under_score.example': "
         "label 'under_score' must be letters, digits and inner hyphens"),
    Case("long-label", {"name": "x", "domains": ["a" * 64 + ".example"]},
         f"certificate 'x' ({'a' * 64}.example): invalid domain '{'a' * 64}.example': "
         f"label '{'a' * 20}'... is longer than 63 characters"),
    Case("zone", {"name": "x", "domains": ["fe80::1%eth0"]},
         "certificate 'x' (fe80::1%eth0): invalid domain 'fe80::1%eth0': "
         "a zone-scoped address (with %zone) cannot be validated by a CA"),
    Case("ipv4-mapped", {"name": "x", "domains": ["::ffff:192.0.2.1"]},
         "certificate 'x' (::ffff:192.0.2.1): invalid domain '::ffff:192.0.2.1': "
         "an IPv4-mapped IPv6 address: give the IPv4 address 192.0.2.1"),
    Case("multicast", {"name": "x", "domains": ["224.0.0.1"]},
         "certificate 'x' (224.0.0.1): invalid domain '224.0.0.1': "
         "an unspecified or multicast address names no host the CA could connect to"),
    Case("leading-zero-address", {"name": "x", "domains": ["192.0.2.07"]},
         "certificate 'x' (192.0.2.07): invalid domain '192.0.2.07': "
         "not a valid IP address (and a DNS name cannot end in an all-numeric label)"),
    Case("name-with-slash", {"name": "../x", "domains": ["a.example"]},
         f"certificate '../x' (a.example): invalid certificate name '../x': {NAME_RULE}"),
    Case("name-with-pem", {"name": "site.pem", "domains": ["a.example"]},
         "certificate 'site.pem' (a.example): invalid certificate name 'site.pem': give it without '.pem'"),
    Case("ipv6-needs-a-name", {"domains": ["2001:db8::1"]},
         f"certificate '2001:db8::1' (2001:db8::1): invalid certificate name '2001:db8::1': {NAME_RULE}; "
         "an IPv6 address needs a name of its own"),
    Case("profile", {"domains": ["a.example"], "profile": "short lived"},
         "certificate 'a.example' (a.example): invalid profile 'short lived': "
         "letters, digits, '.', '_' and '-', at most 64 characters"),
    Case("two-failures", {"certificates": [{"name": "a", "domains": ["a.example"]}, {"name": "w", "domains": ["*.a.example"]},
                                           {"name": "l", "domains": ["localhost"]}], "_ansible_check_mode": True},
         "2 of 3 certificates failed: certificate 'w' (*.a.example): invalid domain '*.a.example': wildcards cannot be "
         "validated with HTTP-01 (they need DNS-01); certificate 'l' (localhost): invalid domain 'localhost': needs at "
         "least two labels (a public DNS name)"),
    Case("duplicate-names", {"certificates": [{"name": "a", "domains": ["a.example"]}, {"name": "a", "domains": ["b.example"]}]},
         "certificate names must be unique; repeated: a"),
    Case("concurrency-0", {"domains": ["a.example"], "concurrency": 0},
         "concurrency must be a whole number from 1 to 16, not 0"),
    Case("concurrency-17", {"domains": ["a.example"], "concurrency": 17},
         "concurrency must be a whole number from 1 to 16, not 17"),
    Case("poll-timeout", {"domains": ["a.example"], "poll_timeout": -1},
         "poll_timeout must be a positive number of seconds, not -1.0"),
    Case("remaining-days", {"domains": ["a.example"], "remaining_days": -1},
         "remaining_days must not be negative (null: the lifetime rule), not -1"),
    Case("mode-words", {"domains": ["a.example"], "mode": "rw-r-----"},
         "invalid mode 'rw-r-----': give an octal string such as '0640'"),
    Case("mode-range", {"domains": ["a.example"], "mode": "017777"}, "invalid mode '017777': out of range"),
    Case("owner", {"domains": ["a.example"], "owner": "no-such-user-here"}, "no such user 'no-such-user-here'"),
    Case("group", {"domains": ["a.example"], "group": "no-such-group-here"}, "no such group 'no-such-group-here'"),
    Case("http-directory", {"domains": ["a.example"], "directory": "http://ca.test/dir"}, HTTP),
    Case("cert-dir-missing", {"domains": ["a.example"], "cert_dir": "{tmp}/nowhere"},
         "certificate 'a.example' (a.example): cert_dir {tmp}/nowhere does not exist or is not a directory"),
    Case("account-key-missing", {"domains": ["a.example"], "account_key_path": "{tmp}/none.key"},
         "certificate 'a.example' (a.example): account key {tmp}/none.key does not exist: "
         "create it with tlsops.haproxy_acme.acme_account"),
    Case("domains-and-certificates", {"domains": ["a.example"], "certificates": [{"domains": ["b.example"]}]},
         "parameters are mutually exclusive: domains|certificates"),
]


@pytest.mark.parametrize("case", ORDER_CASES, ids=lambda c: c.id)
def test_acme_stateless_order(case: Case, fake_ca: FakeAcme, acme_base: dict[str, t.Any], tmp_path: Path,
                              module_main: ModuleMain) -> None:
    args = {**acme_base, "cert_dir": str(tmp_path / "certs"), "use_ari": False, **_fill(case.args, tmp_path)}
    result = module_main(acme_stateless_order, **args)
    assert result.get("failed"), result
    check(result["msg"], _fill(case.message, tmp_path))
    assert fake_ca.requests == []
    assert [p.name for p in (tmp_path / "certs").iterdir() if p.name != LOCK_NAME] == []


# ---------------------------------------------------------------- modules: the HAProxy side


@pytest.fixture
def haproxy(tmp_path: Path) -> t.Iterator[FakeHaproxy]:
    (tmp_path / "certs").mkdir(exist_ok=True)
    with FakeHaproxy(tmp_path, crt_dir=str(tmp_path / "certs")) as server:
        yield server


GOOD = "{good}"
RUNTIME_CASES = [
    Case("relative-path", {"path": "a.pem", "pem_content": GOOD},
         "the certificate path 'a.pem' must be absolute: HAProxy names certificates by their full path"),
    Case("path-with-space", {"path": "{tmp}/certs/a b.pem", "pem_content": GOOD},
         "the certificate path '{tmp}/certs/a b.pem' holds ' ': HAProxy's CLI would split or end the command there; "
         "nothing was sent"),
    Case("pem-junk", {"path": "{tmp}/certs/a.pem", "pem_content": "junk"}, "no PEM certificate found"),
    Case("pem-src-missing", {"path": "{tmp}/certs/a.pem", "pem_src": "{tmp}/none.pem"},
         "the PEM bundle {tmp}/none.pem does not exist"),
    Case("key-mismatch", {"path": "{tmp}/certs/a.pem", "pem_content": "{mismatched}"},
         "the private key does not match the certificate"),
    Case("expired", {"path": "{tmp}/certs/a.pem", "pem_content": "{expired}"}, "the certificate expired on ..."),
    Case("not-covered", {"path": "{tmp}/certs/a.pem", "pem_content": GOOD, "expected_domains": ["b.test"]},
         "the certificate does not cover b.test"),
    Case("bufsize", {"path": "{tmp}/certs/a.pem", "pem_content": GOOD, "bufsize": 100},
         "bufsize 100 is too small: HAProxy's tune.bufsize is 16384 unless raised"),
    Case("mode", {"path": "{tmp}/certs/a.pem", "pem_content": GOOD, "mode": "abc"},
         "invalid mode 'abc': give an octal string such as '0640'"),
    Case("crt-list-with-semicolon", {"path": "{tmp}/certs/a.pem", "pem_content": GOOD, "crt_list": "{tmp}/l;x"},
         "the crt-list '{tmp}/l;x' holds ';': HAProxy's CLI would split or end the command there; nothing was sent"),
]


def _pems(tmp: Path) -> dict[str, str]:
    return {"{good}": bundle(["a.test"]).decode(), "{mismatched}": mismatched_bundle(["a.test"]).decode(),
            "{expired}": expired_bundle(["a.test"]).decode()}


@pytest.mark.parametrize("case", RUNTIME_CASES, ids=lambda c: c.id)
def test_haproxy_runtime_cert(case: Case, haproxy: FakeHaproxy, tmp_path: Path,
                              module_main: ModuleMain) -> None:
    pems = _pems(tmp_path)
    args = {k: pems.get(v, v) if isinstance(v, str) else v for k, v in _fill(case.args, tmp_path).items()}
    result = module_main(haproxy_runtime_cert, socket=haproxy.socket, **args)
    assert result.get("failed"), result
    check(result["msg"], _fill(case.message, tmp_path))
    assert not [c for c in haproxy.state.log if c.startswith(("set ", "new ", "commit ", "add ", "del "))]


INFO_CASES = [
    Case("socket-missing", {"socket": "{tmp}/none.sock"},
         "HAProxy's stats socket {tmp}/none.sock does not exist: is HAProxy running with "
         "'stats socket {tmp}/none.sock level admin' in its global section?"),
    Case("socket-bad-port", {"socket": "127.0.0.1:http"},
         "cannot read the Runtime API address '127.0.0.1:http': give a unix socket path or host:port"),
    Case("path-with-newline", {"paths": ["/etc/haproxy/certs/a.pem\nshow info"]},
         "the certificate path '/etc/haproxy/certs/a.pem\\nshow info' holds ' ', '\\n': HAProxy's CLI would split or end "
         "the command there; nothing was sent"),
]


@pytest.mark.parametrize("case", INFO_CASES, ids=lambda c: c.id)
def test_haproxy_runtime_cert_info(case: Case, haproxy: FakeHaproxy, tmp_path: Path,
                                   module_main: ModuleMain) -> None:
    args = {"socket": haproxy.socket, **_fill(case.args, tmp_path)}
    result = module_main(haproxy_runtime_cert_info, **args)
    assert result.get("failed"), result
    check(result["msg"], _fill(case.message, tmp_path))


# ---------------------------------------------------------------- the roles' preflight

ROLE_CASES = [
    # each role's base variables pass: every other case fails for its own input
    Case("haproxy/base", {}, "PASSED"),
    Case("acme_user/base", {}, "PASSED"),
    Case("renewal_timer/base", {}, "PASSED"),
    # haproxy
    Case("haproxy/thumbprint", {"haproxy_acme_thumbprint": "short"},
         "Set haproxy_acme_thumbprint to the ACME account key thumbprint (RFC 7638: 43 base64url characters), e.g. "
         "the thumbprint returned by tlsops.haproxy_acme.acme_account. HAProxy answers http-01 challenges with it. "
         "Got: 'short'."),
    Case("haproxy/tls-profile", {"haproxy_tls_profile": "old"},
         "haproxy_tls_profile must be 'intermediate' or 'modern', got 'old'."),
    Case("haproxy/port-range", {"haproxy_http_port": 80000},
         "haproxy_http_port must be a TCP port (1-65535), got 80000."),
    Case("haproxy/port-word", {"haproxy_https_port": "https"},
         'haproxy_https_port must be a TCP port (1-65535), got "https".'),
    Case("haproxy/same-ports", {"haproxy_http_port": 8443, "haproxy_https_port": "8443"},
         'haproxy_https_port must be another port than haproxy_http_port (8443), got "8443".'),
    Case("haproxy/relative-cert-dir", {"haproxy_cert_dir": "certs"},
         'haproxy_cert_dir must be an absolute path, got "certs".'),
    Case("haproxy/socket-mode", {"haproxy_stats_socket_mode": "rw"},
         'haproxy_stats_socket_mode must be an octal mode such as "660", got "rw".'),
    Case("haproxy/socket-level", {"haproxy_stats_socket_level": "operator"},
         "haproxy_stats_socket_level is 'operator': the certificate commands (set/commit ssl cert) need level admin."),
    Case("haproxy/backend-server", {"haproxy_backends": [{"name": "be", "servers": [{"name": "s1"}]}]},
         "Each entry of haproxy_backends needs a name (letters, digits, '_', '.', ':', '-'); each server a name and an "
         "address (\"host:port\"); servers_from_group a group and a port. Offending entry: ..."),
    Case("haproxy/site-backend", {"haproxy_sites": [{"name": "shop", "hosts": ["shop.example"], "backend": "be_none"}]},
         "Each entry of haproxy_sites needs a name (letters, digits, '_', '-'), a non-empty list of host names and a "
         "backend defined in haproxy_backends; http_request and http_response are lists of rules. Offending entry: ..."),
    Case("haproxy/host-twice", {
        "haproxy_backends": [{"name": "be"}],
        "haproxy_sites": [{"name": "a", "hosts": ["x.example"], "backend": "be"},
                          {"name": "b", "hosts": ["X.example"], "backend": "be"}]},
         "A host name may map to one backend only; check these for one listed twice: x.example, x.example"),
    Case("haproxy/redirect-code", {"haproxy_redirects": [{"hosts": ["old.example"], "to": "https://new.example", "code": 305}]},
         "Each entry of haproxy_redirects needs hosts (a list), to (a URL without spaces), an optional type (prefix "
         "keeps the path, location does not) and an optional code (301, 302, 303, 307, 308). Offending entry: ..."),
    Case("haproxy/default-backend", {"haproxy_default_backend": "be_none"},
         "haproxy_default_backend 'be_none' is not among the names in haproxy_backends."),
    Case("haproxy/frontend-name", {"haproxy_frontends": [{"name": "https", "binds": [":8443"]}]},
         "Each entry of haproxy_frontends needs a name other than http and https (the role's own) and binds, a list "
         "of bind arguments. Offending entry: ..."),
    Case("haproxy/raw-lines", {"haproxy_global_extra": "maxconn 100"},
         "haproxy_global_extra must be a list of single-line strings."),
    Case("haproxy/raw-line-newline", {"haproxy_defaults_extra": ["option httplog", "retries 3\nmaxconn 9"]},
         "haproxy_defaults_extra must be a list of single-line strings."),
    Case("haproxy/second-port-setting", {"haproxy_stats_socket_level": "root"},
         "haproxy_stats_socket_level must be user, operator or admin, got \"root\"."),
    Case("haproxy/ip-wildcard", {"haproxy_ip_certificates": [{"address": "0.0.0.0"}]},
         "haproxy_ip_certificates: 0.0.0.0 is not an IPv4 or IPv6 address of this host. Give each address the host "
         "serves by address (not a wildcard such as 0.0.0.0 or ::, no %zone), as ip addr prints it. Offending entry: ..."),
    # acme_user
    Case("acme_user/name", {"acme_user_name": "Acme"},
         "acme_user_name, acme_user_group and acme_user_haproxy_group must be POSIX user/group names (lower case "
         "letters, digits, '_' and '-', at most 32 characters), got Acme / acme / haproxy."),
    Case("acme_user/relative-home", {"acme_user_home": "var/lib/acme", "acme_user_account_dir": "/var/lib/acme/account",
                                     "acme_user_state_dir": "/var/lib/acme/state"},
         "acme_user_home must be an absolute path other than '/', got var/lib/acme."),
    Case("acme_user/shared-account-dir", {"acme_user_account_dir": "/var/lib/acme"},
         "acme_user_account_dir (/var/lib/acme) holds the account key with mode 0700: give it its own directory, "
         "not the home or the state directory."),
    # renewal_timer
    Case("renewal_timer/state", {"renewal_timer_state": "gone"},
         "renewal_timer_state must be present or absent (got gone), renewal_timer_scheduler auto, systemd or cron "
         "(got auto)."),
    Case("renewal_timer/name", {"renewal_timer_name": "renew job"},
         "renewal_timer_name may hold letters, digits, '_' and '-' (it names the units and the cron file); "
         "renewal_timer_python, _install_dir, _script_path, _config_path (a .json file), _environment_file, "
         "_cron_lock_file and each of _read_write_paths must be absolute paths without spaces."),
    Case("renewal_timer/extra-args", {"renewal_timer_extra_args": ["--dry-run; rm"]},
         "renewal_timer_extra_args must be a list of plain arguments (letters, digits and _=.,/:@+-), e.g. "
         "[\"--dry-run\"]; they end up in a unit file and a crontab without quoting."),
    Case("renewal_timer/domains-string", {"renewal_timer_certificates": [{"name": "a", "domains": "a.example"}]},
         "Each certificate needs a name (letters, digits, '_', '.', '-'; it names <cert dir>/<name>.pem), a non-empty "
         "list of domains, an optional key_type (ec256, ec384, rsa2048, rsa3072, rsa4096) and an optional ACME profile "
         "(letters, digits, '.', '_', '-'). Offending entry: ..."),
    Case("renewal_timer/http-directory", {"renewal_timer_directory": "http://ca.example/dir"},
         "renewal_timer_directory must be an https:// URL or an alias: RFC 8555 section 6.1 allows ACME over HTTPS "
         "only, got \"http://ca.example/dir\"."),
    Case("renewal_timer/relative-key", {"renewal_timer_account_key_path": "account.key"},
         'renewal_timer_account_key_path must be an absolute path on the host, got "account.key".'),
    Case("renewal_timer/socket", {"renewal_timer_socket": "localhost"},
         'renewal_timer_socket must be a unix socket path or host:port, got "localhost".'),
    Case("renewal_timer/remaining-days", {"renewal_timer_remaining_days": -5},
         "renewal_timer_remaining_days must be empty, or a positive number, got -5."),
    Case("renewal_timer/cert-mode", {"renewal_timer_cert_mode": "rw-r-----"},
         'renewal_timer_cert_mode must be an octal mode such as "0640", got "rw-r-----".'),
    Case("renewal_timer/key-in-cert-dir", {"renewal_timer_cert_dir": "/etc/haproxy/certs",
                                           "renewal_timer_account_key_path": "/etc/haproxy/certs/account.key"},
         "The account key (/etc/haproxy/certs/account.key) and the job's configuration (/etc/haproxy-acme/renew.json) "
         "must not live in the certificate directory /etc/haproxy/certs."),
    Case("renewal_timer/metrics-path", {"renewal_timer_metrics_path": "/var/lib/prometheus/node-exporter/acme.txt"},
         "renewal_timer_metrics_path must be empty (no metrics) or an absolute path without spaces ending in .prom "
         "(node_exporter's textfile collector reads only those), outside the certificate directory; got "
         "\"/var/lib/prometheus/node-exporter/acme.txt\"."),
    Case("renewal_timer/owner", {"renewal_timer_cert_owner": "root"},
         "renewal_timer_cert_owner must be the job's user (acme) and renewal_timer_cert_group HAProxy's group "
         "(haproxy): the sandboxed job cannot chown; bundles get their group from the setgid certificate directory."),
]
# What each role needs to pass its preflight at all (the haproxy role has no default thumbprint).
ROLE_BASE = {"haproxy": {"haproxy_acme_thumbprint": "t" * 43}, "acme_user": {}, "renewal_timer": {}}
PLAY = """\
- name: {id}
  hosts: localhost
  connection: local
  gather_facts: false
  vars: {vars}
  tasks:
    - name: The preflight of {role}
      block:
        - name: Run it
          ansible.builtin.include_role:
            name: tlsops.haproxy_acme.{role}
            tasks_from: preflight
        - name: Passed
          ansible.builtin.set_fact:
            _preflight: "{{{{ _preflight | default({{}}) | combine({{{key}: 'PASSED'}}) }}}}"
      rescue:
        - name: Failed
          ansible.builtin.set_fact:
            _preflight: "{{{{ _preflight | default({{}}) | combine({{{key}: _said}}) }}}}"
          vars:  # a loop's first failed item says what is wrong; the task only says that one did
            _items: "{{{{ ansible_failed_result.results | default([]) | selectattr('failed', 'defined') | selectattr('failed') }}}}"
            _said: "{{{{ (_items | first).msg if _items | length else ansible_failed_result.msg }}}}"
"""
WRITE = """\
- name: Write what each case said
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Write
      ansible.builtin.copy:
        content: "{{{{ _preflight | to_json }}}}"
        dest: {dest}
        mode: "0600"
"""


@pytest.fixture(scope="module")
def preflight(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every role case in one ansible-playbook run: case id -> the failure message ('PASSED' if none)."""
    base = tmp_path_factory.mktemp("preflight")
    plays = []
    for case in ROLE_CASES:
        role = case.id.split("/", 1)[0]
        variables = {**ROLE_BASE[role], **case.args}
        plays.append(PLAY.format(id=case.id, role=role, vars=json.dumps(variables), key=f"'{case.id}'"))
    out = base / "messages.json"
    (base / "play.yml").write_text("".join(plays) + WRITE.format(dest=json.dumps(str(out))))
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "build" / "collections"),
           "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "false",
           "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"}
    run = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(base / "play.yml"),
                          "-e", json.dumps({"ansible_python_interpreter": sys.executable})],
                         capture_output=True, text=True, env=env, timeout=300, check=False)
    assert run.returncode == 0 and out.exists(), run.stdout + run.stderr
    return t.cast(dict[str, str], json.loads(out.read_text()))


@pytest.mark.parametrize("case", ROLE_CASES, ids=lambda c: c.id)
def test_role_preflight(case: Case, preflight: dict[str, str]) -> None:
    message = " ".join(preflight[case.id].split())  # fail_msg: >- folds lines; Jinja may leave double spaces
    check(message, case.message)


# ---------------------------------------------------------------- the host job's configuration

JOB_BASE: dict[str, t.Any] = {
    "version": 1, "directory": "https://ca.test/dir", "account_key_path": "{tmp}/none.key",
    "certificates": [{"name": "a.example", "domains": ["a.example"]}], "cert_dir": "{tmp}/certs",
    "socket": "{tmp}/admin.sock",
}
CFG = "{tmp}/renew.json"
JOB_CASES = [
    Case("missing-file", {"_file": None}, f"configuration error: cannot read {CFG}: No such file or directory"),
    Case("not-json", {"_file": "{"}, f"configuration error: {CFG} is not valid JSON: Expecting property name enclosed "
                                     "in double quotes: line 1 column 2 (char 1)"),
    Case("not-utf8", {"_file": b"\xff{}"}, f"configuration error: {CFG} is not valid JSON: 'utf-8' codec can't decode "
                                           "byte 0xff in position 0: invalid start byte"),
    Case("a-list", {"_file": "[]"}, f'configuration error: {CFG}: expected a JSON object with "version": 1'),
    Case("version-2", {"version": 2}, f'configuration error: {CFG}: expected a JSON object with "version": 1'),
    Case("missing-keys", {"cert_dir": None, "socket": ""}, f"configuration error: {CFG}: missing cert_dir, socket"),
    Case("certificates-string", {"certificates": "a.example"},
         f'configuration error: {CFG}: certificates must be a list of {{"name", "domains"}}, not "a.example"'),
    Case("certificates-empty", {"certificates": []},
         f'configuration error: {CFG}: certificates is empty: give at least one {{"name", "domains"}}'),
    Case("certificate-string", {"certificates": ["a.example"]},
         f'configuration error: {CFG}: certificates[0] must be an object {{"name", "domains"}}, not "a.example"'),
    Case("directory-number", {"directory": 5},
         f"configuration error: {CFG}: directory must be an ACME directory URL or alias, not 5"),
    Case("validate-certs-word", {"validate_certs": "yes"},
         f'configuration error: {CFG}: validate_certs must be true or false, not "yes"'),
    Case("remaining-days-word", {"remaining_days": "soon"},
         f'configuration error: {CFG}: remaining_days must be a number of days, or null for the lifetime rule, not "soon"'),
    Case("owner-number", {"owner": 0}, f"configuration error: {CFG}: owner must be a user name or null, not 0"),
    Case("concurrency-bool", {"concurrency": True},
         f"configuration error: {CFG}: concurrency must be a whole number from 1 to 16, not true"),
    Case("concurrency-0", {"concurrency": 0},
         f"configuration error in {CFG}: concurrency must be a whole number from 1 to 16, not 0"),
    Case("concurrency-fraction", {"concurrency": 2.5},
         f"configuration error in {CFG}: concurrency must be a whole number from 1 to 16, not 2.5"),
    Case("request-timeout-0", {"request_timeout": 0},
         f"configuration error in {CFG}: request_timeout must be a positive number of seconds, not 0"),
    Case("http-directory", {"directory": "http://ca.test/dir"}, f"configuration error in {CFG}: {HTTP}"),
    Case("mode-words", {"mode": "rw-r-----"},
         f"configuration error in {CFG}: invalid mode 'rw-r-----': give an octal string such as '0640'"),
    Case("unknown-owner", {"owner": "no-such-user-here"},
         f"configuration error in {CFG}: no such user 'no-such-user-here'"),
    Case("domains-number", {"certificates": [{"name": "a", "domains": 5}]},
         f"configuration error in {CFG}: certificates[0]: domains must be a list of DNS names or IP addresses, not 5"),
    Case("entry-empty", {"certificates": [{}]},
         f"configuration error in {CFG}: certificates[0] has no name and no domains: give at least one DNS name or "
         "IP address"),
]


@pytest.mark.parametrize("case", JOB_CASES, ids=lambda c: c.id)
def test_host_job_configuration(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "certs").mkdir()
    path = tmp_path / "renew.json"
    if "_file" in case.args:
        content = case.args["_file"]
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            path.write_text(content)
    else:
        config = {k: v for k, v in _fill({**JOB_BASE, **case.args}, tmp_path).items() if v is not None}
        path.write_text(json.dumps(config))
    assert _hostjob.main(["--config", str(path)]) == _hostjob.EXIT_CONFIG
    captured = capsys.readouterr()
    assert captured.out == ""
    check(captured.err.rstrip("\n"), _fill(case.message, tmp_path))


def test_host_job_says_a_certificate_error_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad name fails its certificate (exit 1), and its line says the error once."""
    (tmp_path / "certs").mkdir()
    config = _fill({**JOB_BASE, "certificates": [{"name": "w", "domains": ["*.example.test"]}]}, tmp_path)
    (tmp_path / "renew.json").write_text(json.dumps(config))
    assert _hostjob.main(["--config", str(tmp_path / "renew.json")]) == _hostjob.EXIT_FAILED
    error = "certificate 'w' (*.example.test): invalid domain '*.example.test': " \
            "wildcards cannot be validated with HTTP-01 (they need DNS-01)"
    assert capsys.readouterr().out.splitlines() == [f"w: failed: {error}", f"1 certificates, 0 renewed, FAILED: {error}"]
