# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The engine against the fake CA: decide, order, write; failures isolated; no request when nothing is due."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import stat
import typing as t
from pathlib import Path

import pytest
from cryptography import x509

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import account, ari, renewal
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.client import AcmeClient
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.issuer import CertSpec, Issuer, Options
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import PemError
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._index import INDEX_NAME
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import (
    check_bundle,
    load_certificates,
    parse_bundle,
)
from tests.unit.plugins.module_utils._acme.fake_acme import FakeAcme
from tests.unit.plugins.module_utils.counting import count_calls

MakeClient = t.Callable[..., AcmeClient]


class Env:
    def __init__(self, fake: FakeAcme, make_client: MakeClient, cert_dir: Path) -> None:
        self.fake = fake
        self.make_client = make_client
        self.cert_dir = cert_dir
        self.key = make_client(fake).key
        self.last_client: AcmeClient | None = None

    def run(self, specs: list[CertSpec], account_error: Exception | None = None, **options: t.Any) -> dict[str, t.Any]:
        client = self.make_client(self.fake, key=self.key)
        self.last_client = client
        self.fake.requests.clear()

        def prepare() -> None:
            if account_error:
                raise account_error
            account.ensure(client, contact=None, terms_agreed=True)

        options.setdefault("use_ari", False)
        results = Issuer(client, prepare, Options(cert_dir=str(self.cert_dir), **options)).run(specs)
        return {r.name: r for r in results}

    def pem(self, name: str) -> bytes:
        return (self.cert_dir / f"{name}.pem").read_bytes()


@pytest.fixture
def env(fake: FakeAcme, make_client: MakeClient, tmp_path: Path) -> Env:
    (tmp_path / "certs").mkdir()
    return Env(fake, make_client, tmp_path / "certs")


def spec(name: str, *domains: str, key_type: str = "ec256") -> CertSpec:
    return CertSpec(name, list(domains) or [f"{name}.example"], key_type)


def test_issue_then_unchanged_without_any_request(env: Env) -> None:
    result = env.run([spec("web", "WWW.Example.com.", "example.com")])["web"]
    assert (result.action, result.changed, result.reason) == ("issued", True, "no certificate yet")
    assert result.domains == ["www.example.com", "example.com"]
    bundle = parse_bundle(env.pem("web"))
    check_bundle(bundle, ["example.com", "www.example.com"])
    assert bundle.info().serial == result.info.serial
    assert stat.S_IMODE(os.stat(result.path).st_mode) == 0o640
    assert [o.domains for o in env.fake.orders] == [["www.example.com", "example.com"]]
    # http-01 only: the dns-01 challenge the CA also offers is never touched
    assert env.fake.count("/dns") == 0

    again = env.run([spec("web", "example.com", "www.example.com")])["web"]
    assert (again.action, again.changed) == ("unchanged", False)
    assert again.reason.startswith("valid, ")
    assert env.fake.requests == []


def test_ip_addresses_are_ordered_as_ip_identifiers_then_unchanged(env: Env) -> None:
    """RFC 8738: "ip" identifiers, iPAddress SANs; the names read back equal the names asked."""
    result = env.run([spec("addr", "192.0.2.7", "[2001:DB8:0::1]", "www.example.com")])["addr"]
    assert result.action == "issued", result.msg
    assert result.domains == ["192.0.2.7", "2001:db8::1", "www.example.com"]
    assert env.fake.orders[-1].ips == ["192.0.2.7", "2001:db8::1"]
    bundle = parse_bundle(env.pem("addr"))
    check_bundle(bundle, result.domains)
    assert set(bundle.info().domains) == set(result.domains)

    again = env.run([spec("addr", "2001:db8::0:1", "192.0.2.7", "WWW.example.com")])["addr"]
    assert (again.action, again.changed) == ("unchanged", False), again.reason
    assert env.fake.requests == []

    other = env.run([spec("addr", "192.0.2.8", "2001:db8::1", "www.example.com")])["addr"]
    assert other.action == "renewed" and other.reason.startswith("the domains differ")


def test_no_op_with_ari_only_fetches_the_directory_when_the_ca_has_no_ari(env: Env) -> None:
    env.run([spec("a"), spec("b")])
    results = env.run([spec("a"), spec("b")], use_ari=True)
    assert {r.action for r in results.values()} == {"unchanged"}
    assert env.fake.requests == [("GET", "https://ca.test/dir")]


def test_ari_window_renews_with_replaces(env: Env) -> None:
    env.run([spec("a"), spec("b")])
    env.fake.renewal_info = True
    now = dt.datetime.now(dt.timezone.utc)
    env.fake.ari_window = (now - dt.timedelta(days=2), now - dt.timedelta(days=1))
    old_a = load_certificates(env.pem("a"))[0]
    results = env.run([spec("a"), spec("b")], use_ari=True)
    assert results["a"].action == "renewed" and "renewal window (ARI)" in results["a"].reason
    assert ari.cert_id(old_a) in [o.replaces for o in env.fake.orders]
    assert results["a"].replaces == ari.cert_id(old_a)
    assert env.fake.count("/renewal-info/") == 2


def test_ari_replaces_refused_falls_back_to_a_plain_order(env: Env) -> None:
    env.run([spec("a")])
    env.fake.renewal_info, env.fake.reject_replaces = True, True
    result = env.run([spec("a")], use_ari=True, force=True)["a"]
    assert result.action == "renewed", result.msg
    assert env.fake.orders[-1].replaces is None and result.replaces is None


@pytest.mark.parametrize(("status", "kind", "detail"), [
    (403, "unauthorized", "requester account did not request the certificate being replaced by this order"),
    (500, "serverInternal", "could not find an order for the given certificate"),
    (400, "malformed", "replaces is not a certificate of this CA"),
    (409, "conflict", "already replaced"),
])
def test_a_refused_replaces_never_blocks_the_renewal(env: Env, status: int, kind: str, detail: str) -> None:
    env.run([spec("a")])
    env.fake.renewal_info, env.fake.reject_replaces = True, True
    env.fake.replaces_problem = (status, kind, detail)
    result = env.run([spec("a")], use_ari=True, force=True)["a"]
    assert result.action == "renewed", result.msg
    assert [o.replaces is None for o in env.fake.orders] == [True, True]
    assert f"ordered without replaces, which the CA refused ({kind}: {detail})" in result.reason


def test_a_rate_limited_replaces_is_final(env: Env) -> None:
    env.run([spec("a")])
    env.fake.renewal_info, env.fake.reject_replaces = True, True
    env.fake.replaces_problem = (429, "rateLimited", "too many new orders")
    result = env.run([spec("a")], use_ari=True, force=True, poll_timeout=0.5)["a"]
    assert result.action == "failed" and "rateLimited" in str(result.msg)
    assert len(env.fake.orders) == 1


def test_profile_is_sent_checked_and_recorded(env: Env) -> None:
    env.fake.profiles = {"classic": "90 days", "shortlived": "6 days"}
    results = env.run([CertSpec("a", ["a.example"], profile="shortlived"), spec("b")])
    ordered = sorted((o.domains[0], o.profile or "") for o in env.fake.orders)
    assert ordered == [("a.example", "shortlived"), ("b.example", "")]
    assert env.pem("a").startswith(b"# acme-profile: shortlived\n-----BEGIN CERTIFICATE-----")
    assert not env.pem("b").startswith(b"#")
    assert (results["a"].profile, results["b"].profile) == ("shortlived", None)
    check_bundle(parse_bundle(env.pem("a")), ["a.example"])
    # The same profile again: nothing to do. Another one: renewed, with the reason.
    assert env.run([CertSpec("a", ["a.example"], profile="shortlived")])["a"].action == "unchanged"
    again = env.run([CertSpec("a", ["a.example"], profile="classic")])["a"]
    assert (again.action, again.profile) == ("renewed", "classic")
    assert "the profile differs (the certificate was ordered with 'shortlived', 'classic' is asked)" in again.reason


@pytest.mark.parametrize(("offered", "message"), [
    ({"classic": "", "tlsserver": ""}, "profile 'sixday' is not offered by the CA at https://ca.test/dir; "
                                       "it offers: classic, tlsserver"),
    ({}, "profile 'sixday' is asked, but the CA at https://ca.test/dir offers no profiles"),
])
def test_unknown_profile_fails_that_certificate_naming_the_offered_ones(
        env: Env, offered: dict[str, str], message: str) -> None:
    env.fake.profiles = offered
    results = env.run([CertSpec("a", ["a.example"], profile="sixday"), spec("b")])
    assert results["a"].action == "failed" and message in str(results["a"].msg)
    assert results["b"].action == "issued"
    assert [o.domains for o in env.fake.orders] == [["b.example"]]


def test_malformed_profile_name_is_refused_before_anything_is_sent(env: Env) -> None:
    result = env.run([CertSpec("a", ["a.example"], profile="short lived\n")])["a"]
    assert result.action == "failed" and "invalid profile" in str(result.msg)
    assert env.fake.requests == []


def test_ari_future_window_keeps_the_certificate(env: Env) -> None:
    env.run([spec("a")])
    env.fake.renewal_info = True
    now = dt.datetime.now(dt.timezone.utc)
    env.fake.ari_window = (now + dt.timedelta(days=30), now + dt.timedelta(days=31))
    assert env.run([spec("a")], use_ari=True)["a"].action == "unchanged"
    assert env.fake.count("new-order") == 0


def test_check_mode_predicts_and_sends_nothing(env: Env) -> None:
    env.run([spec("old")])
    before = env.pem("old")
    results = env.run([spec("new"), spec("old"), spec("old2", "old.example", "more.example")],
                      check_mode=True, use_ari=True)
    assert [(r.action, r.changed) for r in results.values()] == [("issued", True), ("unchanged", False), ("issued", True)]
    assert env.fake.requests == []
    assert not (env.cert_dir / "new.pem").exists() and env.pem("old") == before


def test_force_renews_and_reuse_key(env: Env) -> None:
    env.run([spec("a")])
    first = parse_bundle(env.pem("a"))
    renewed = env.run([spec("a")], force=True, reuse_key=True)["a"]
    assert (renewed.action, renewed.reason) == ("renewed", "force is set")
    second = parse_bundle(env.pem("a"))
    assert second.info().serial != first.info().serial
    assert second.key is not None and first.key is not None
    assert second.key.private_numbers() == first.key.private_numbers()
    env.run([spec("a")], force=True)
    third = parse_bundle(env.pem("a"))
    assert third.key.private_numbers() != first.key.private_numbers()  # type: ignore[union-attr]


def test_key_type_change_renews(env: Env) -> None:
    env.run([spec("a")])
    result = env.run([spec("a", key_type="rsa2048")])["a"]
    assert result.action == "renewed" and "key type differs" in result.reason
    assert parse_bundle(env.pem("a")).info().key_type == "rsa2048"


def test_one_failure_does_not_stop_the_batch_and_keeps_the_old_file(env: Env) -> None:
    env.run([spec("bad", "ok.example", "fails.example")])
    before = env.pem("bad")
    env.fake.fail_domains = ("fails.example",)
    results = env.run([spec("good1"), spec("bad", "ok.example", "fails.example"), spec("good2")],
                      force=True, concurrency=3)
    assert [r.action for r in results.values()] == ["issued", "failed", "issued"]
    bad = results["bad"]
    assert bad.msg is not None
    assert bad.msg.startswith("certificate 'bad' (ok.example, fails.example): validation of fails.example failed: ")
    assert "unauthorized: Invalid response from http://fails.example/" in bad.msg
    assert env.pem("bad") == before
    assert [p.name for p in env.cert_dir.iterdir() if p.name.startswith(".") and p.name != INDEX_NAME] == []


def test_rejected_identifier_names_the_domain(env: Env) -> None:
    env.fake.reject_domains = ("evil.example",)
    result = env.run([spec("x", "fine.example", "evil.example")])["x"]
    assert result.action == "failed"
    assert result.msg == ("certificate 'x' (fine.example, evil.example): ACME server error rejectedIdentifier: "
                          "Error creating new order [evil.example: rejectedIdentifier: policy forbids]")
    assert not (env.cert_dir / "x.pem").exists()


def test_rate_limited_says_when(env: Env) -> None:
    env.fake.rate_limited = True
    result = env.run([spec("x")])["x"]
    assert result.action == "failed"
    assert re.search(r"rateLimited: too many certificates already issued \(the server asks to retry after 3600 s, "
                     r"at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)$", str(result.msg)), result.msg


def test_invalid_names_fail_alone_before_any_request(env: Env) -> None:
    results = env.run([spec("w", "*.example.com"), spec("ip", "fe80::1%eth0"), spec("../x", "a.example"),
                       spec("fine")])
    assert results["w"].msg == ("certificate 'w' (*.example.com): invalid domain '*.example.com': "
                                "wildcards cannot be validated with HTTP-01 (they need DNS-01)")
    assert "zone-scoped" in str(results["ip"].msg)
    assert "invalid certificate name" in str(results["../x"].msg)
    assert results["fine"].action == "issued"
    assert len(env.fake.orders) == 1


def test_missing_cert_dir_fails_without_an_order(env: Env, tmp_path: Path) -> None:
    env.cert_dir = tmp_path / "nope"
    result = env.run([spec("a")])["a"]
    assert result.action == "failed" and "cert_dir" in str(result.msg) and "does not exist" in str(result.msg)
    assert env.fake.requests == []


def test_account_key_error_is_reported_per_certificate(env: Env) -> None:
    error = PemError("account key /k: no PEM private key found")
    results = env.run([spec("a"), spec("b")], account_error=error)
    assert [r.msg for r in results.values()] == [
        "certificate 'a' (a.example): account key /k: no PEM private key found",
        "certificate 'b' (b.example): account key /k: no PEM private key found",
    ]


def test_preferred_chain(env: Env) -> None:
    env.run([spec("a"), spec("b")], preferred_chain="Fake Root X2")
    top = load_certificates(env.pem("a"))[-1]
    assert top.issuer == env.fake.root2.subject
    env.run([spec("c")], preferred_chain="No Such Root")
    assert load_certificates(env.pem("c"))[-1].issuer == env.fake.root.subject


def test_unchanged_file_gets_the_mode_asked(env: Env) -> None:
    env.run([spec("a")])
    os.chmod(env.cert_dir / "a.pem", 0o644)
    check = env.run([spec("a")], check_mode=True)["a"]
    assert (check.action, check.changed) == ("unchanged", True)
    result = env.run([spec("a")], mode=0o600)["a"]
    assert (result.action, result.changed) == ("unchanged", True) and "mode/owner/group fixed" in result.reason
    assert stat.S_IMODE(os.stat(env.cert_dir / "a.pem").st_mode) == 0o600
    assert env.fake.requests == []


@pytest.mark.parametrize("concurrency", [1, 8])
def test_many_with_bad_nonces(env: Env, concurrency: int) -> None:
    env.fake.nonce_reject = 30
    specs = [spec(f"c{i}", f"c{i}.example", f"www.c{i}.example") for i in range(20)]
    results = env.run(specs, concurrency=concurrency)
    assert {r.action for r in results.values()} == {"issued"}, [r.msg for r in results.values() if r.msg]
    assert env.last_client is not None and env.last_client.transport.bad_nonce_count > 0
    for i in range(20):
        leaf = load_certificates(env.pem(f"c{i}"))[0]
        assert set(leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName)) == {f"c{i}.example", f"www.c{i}.example"}


# ------------------------------------------------------------ the directory's index (_index.py)


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    return count_calls(monkeypatch, renewal, "parse_bundle")


def test_nothing_due_parses_no_bundle_once_indexed(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    specs = [spec(f"c{i}") for i in range(5)]
    env.run(specs)  # issued: the facts of each new bundle are kept as it is written
    parses = _count_parses(monkeypatch)
    results = env.run(specs, use_ari=False)
    assert {r.action for r in results.values()} == {"unchanged"} and len(parses) == 0
    assert (env.cert_dir / INDEX_NAME).stat().st_mode & 0o777 == 0o640
    text = (env.cert_dir / INDEX_NAME).read_text()
    assert "PRIVATE" not in text and "c0.pem" in text


def test_a_replaced_bundle_is_read_again(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.run([spec("a"), spec("b")])
    other = env.cert_dir / "other.pem"
    env.run([spec("other", "a.example")])  # a valid bundle for a.example's name set
    os.replace(other, env.cert_dir / "a.pem")  # replaced behind the index's back
    parses = _count_parses(monkeypatch)
    results = env.run([spec("a"), spec("b")], use_ari=False)
    assert (results["a"].action, results["b"].action) == ("unchanged", "unchanged")
    assert results["a"].info is not None and results["a"].info.serial == parse_bundle(env.pem("a")).info().serial
    assert len(parses) == 1  # a.pem only


def test_check_mode_leaves_no_index(env: Env) -> None:
    env.run([spec("a")])
    (env.cert_dir / INDEX_NAME).unlink()
    env.run([spec("a")], check_mode=True)
    assert not (env.cert_dir / INDEX_NAME).exists()


# ------------------------------------------- deciding from a copy's facts (the fleet's renew)


def _facts_elsewhere(env: Env, name: str, where: Path) -> str:
    """Issue ``name``, move its bundle out of cert_dir to ``where``, return its facts as a node reports them."""
    env.run([spec(name)])
    where.mkdir(exist_ok=True)
    data = env.pem(name)
    (where / f"{name}.pem").write_bytes(data)
    (env.cert_dir / f"{name}.pem").unlink()
    return json.dumps(renewal.facts_of(data))


def test_facts_of_a_good_copy_decide_unchanged_and_write_nothing(env: Env, tmp_path: Path) -> None:
    facts = _facts_elsewhere(env, "a", tmp_path / "node")
    serial = json.loads(facts)["info"]["serial"]
    result = env.run([CertSpec("a", ["a.example"], bundle_facts=facts)], use_ari=True)["a"]
    assert (result.action, result.changed, result.info.serial) == ("unchanged", False, serial), result.reason
    assert not (env.cert_dir / "a.pem").exists()
    assert env.fake.requests == [("GET", "https://ca.test/dir")]  # the directory, for ARI; no order


def test_facts_of_a_copy_that_is_due_order_with_a_new_key(env: Env, tmp_path: Path) -> None:
    facts = _facts_elsewhere(env, "a", tmp_path / "node")
    old = parse_bundle((tmp_path / "node" / "a.pem").read_bytes())
    asked = CertSpec("a", ["a.example", "www.a.example"], bundle_facts=facts)  # other names: due
    result = env.run([asked], reuse_key=True)["a"]
    assert result.action == "renewed" and "domains differ" in result.reason, result.reason
    new = parse_bundle(env.pem("a"))
    assert new.key is not None and old.key is not None
    assert new.key.private_numbers() != old.key.private_numbers()  # the key is not here to reuse


def test_facts_of_an_expiring_copy_renew_in_check_mode_and_send_nothing(env: Env, tmp_path: Path) -> None:
    facts = json.loads(_facts_elsewhere(env, "a", tmp_path / "node"))
    now = dt.datetime.now(dt.timezone.utc).timestamp()
    facts["info"]["not_before"], facts["info"]["not_after"] = now - 30 * 86400, now + 60  # a minute of 30 days left
    result = env.run([CertSpec("a", ["a.example"], bundle_facts=json.dumps(facts))], check_mode=True)["a"]
    assert (result.action, result.changed) == ("renewed", True), result.reason
    assert env.fake.requests == []


def test_a_file_in_cert_dir_wins_over_facts(env: Env, tmp_path: Path) -> None:
    facts = json.loads(_facts_elsewhere(env, "a", tmp_path / "node"))
    env.run([spec("a")])  # a file here again, another serial
    here = parse_bundle(env.pem("a")).info().serial
    facts["info"]["not_after"] = 0  # facts that would renew
    result = env.run([CertSpec("a", ["a.example"], bundle_facts=json.dumps(facts))])["a"]
    assert (result.action, result.info.serial) == ("unchanged", here)


@pytest.mark.parametrize("facts", ["not json", "[]", '{"info": {}}', '{"cert_id": null}'])
def test_facts_of_another_shape_fail_that_certificate(env: Env, facts: str) -> None:
    results = env.run([CertSpec("a", ["a.example"], bundle_facts=facts), spec("b")])
    assert results["a"].action == "failed" and "bundle_facts is not what" in results["a"].msg
    assert results["b"].action == "issued"
