# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Faults at the HTTP seam: lost replies are replayed safely, storms are ridden out, an outage
costs one time budget for the whole batch (the fake CA's fault knobs, fake_acme.py)."""

from __future__ import annotations

import re
import typing as t
from pathlib import Path

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import account
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.client import AcmeClient
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.issuer import (
    CertResult,
    CertSpec,
    Issuer,
    Options,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.order_run import failure_message
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._index import INDEX_NAME
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import check_bundle, parse_bundle
from tests.unit.plugins.module_utils._acme.conftest import FakeClock
from tests.unit.plugins.module_utils._acme.fake_acme import FakeAcme

MakeClient = t.Callable[..., AcmeClient]


class Env:
    def __init__(self, fake: FakeAcme, make_client: MakeClient, cert_dir: Path, clock: FakeClock) -> None:
        self.fake, self.make_client, self.cert_dir, self.clock = fake, make_client, cert_dir, clock
        self.key = make_client(fake).key
        self.client: AcmeClient | None = None

    def run(self, specs: list[CertSpec], **options: t.Any) -> list[CertResult]:
        client = self.client = self.make_client(self.fake, key=self.key)
        options.setdefault("use_ari", False)
        return Issuer(client, lambda: account.ensure(client, contact=None, terms_agreed=True) and None,
                      Options(cert_dir=str(self.cert_dir), **options)).run(specs)

    def one(self, name: str = "web", **options: t.Any) -> CertResult:
        return self.run([CertSpec(name, [f"{name}.example"])], **options)[0]


@pytest.fixture
def env(fake: FakeAcme, make_client: MakeClient, tmp_path: Path, clock: FakeClock) -> Env:
    (tmp_path / "certs").mkdir()
    return Env(fake, make_client, tmp_path / "certs", clock)


def issued(result: CertResult, env: Env) -> None:
    assert result.action == "issued", result.msg
    check_bundle(parse_bundle((env.cert_dir / f"{result.name}.pem").read_bytes()), result.domains)


# ------------------------------------------------------------------ the CA acted, the reply was lost


@pytest.mark.parametrize("where", ["/new-acct", "/new-order", "/authz/", "/order/", "/cert/", "/dir"])
def test_a_lost_reply_of_a_request_safe_to_repeat_is_sent_again(env: Env, where: str) -> None:
    env.fake.lose_reply = {where: 1}
    result = env.one()
    issued(result, env)
    assert env.fake.lose_reply == {where: 0}
    # newOrder sent twice: a second order at worst, never used (harmless)
    assert len(env.fake.orders) == (2 if where == "/new-order" else 1)


def test_a_lost_challenge_reply_is_not_sent_again_when_the_authorization_shows_it_arrived(env: Env) -> None:
    env.fake.lose_reply = {"/chall/": 1}
    issued(env.one(), env)
    assert env.fake.count("/chall/") == 1  # read the authorization instead: it was "processing"
    assert env.client is not None and env.client.transport.lost_replies == 1


def test_a_lost_finalize_reply_takes_the_certificate_of_the_order(env: Env) -> None:
    env.fake.lose_reply = {"/finalize/": 1}
    issued(env.one(), env)
    assert env.fake.count("/finalize/") == 1 and len(env.fake.issued) == 1  # one CSR, one certificate


@pytest.mark.parametrize("where", ["/chall/", "/finalize/"])
def test_a_request_reset_before_the_ca_saw_it_is_sent_again_after_reading_the_state(env: Env, where: str) -> None:
    env.fake.reset_before = {where: 1}
    issued(env.one(), env)
    assert env.fake.count(where) == 2 and len(env.fake.issued) == 1


@pytest.mark.parametrize("where", ["/chall/", "/finalize/", "/cert/", "/order/", "/dir"])
def test_a_body_cut_short_is_a_lost_reply(env: Env, where: str) -> None:
    env.fake.truncate = {where: 1}
    issued(env.one(), env)
    assert len(env.fake.issued) == 1


def test_replies_lost_again_while_reading_the_state(env: Env) -> None:
    """The trigger's reply is lost, and so are the next two authorization reads: still one trigger."""
    env.fake.lose_reply = {"/chall/": 1, "/authz/": 3, "/finalize/": 1, "/order/": 2}
    issued(env.one(), env)
    assert env.fake.count("/chall/") == 1 and env.fake.count("/finalize/") == 1


def test_a_challenge_refused_for_another_reason_still_fails_clearly(env: Env) -> None:
    """A refusal while the challenge is still pending is the CA's answer, not a replay."""
    env.fake.reset_before = {"/chall/": 0}
    original = env.fake._challenge

    def refuse(url: str, payload: t.Any, kid: str) -> t.Any:
        return env.fake._problem(url, 400, "malformed", "this challenge is not for you")

    env.fake._challenge = refuse  # type: ignore[method-assign]
    result = env.one()
    env.fake._challenge = original  # type: ignore[method-assign]
    assert result.action == "failed" and "malformed: this challenge is not for you" in str(result.msg)


def test_a_deactivation_whose_reply_was_lost_is_done(fake: FakeAcme, make_client: MakeClient) -> None:
    client = make_client(fake)
    found = account.create(client, contact=None, terms_agreed=True)
    fake.lose_reply = {"/acct/": 1}
    assert account.deactivate(client, found).status == "deactivated"
    assert fake.count("/acct/") == 2


# ------------------------------------------------------------------ storms


# One thread: the fake clock moves by every thread's sleeps, so with several it runs faster than
# any request's time bound would in real time (the shared pause has a real-clock test of its own).


def test_a_storm_of_503_with_retry_after_is_ridden_out(env: Env) -> None:
    env.fake.unavailable, env.fake.unavailable_retry_after = 30, "1"
    results = env.run([CertSpec(f"c{i}", [f"c{i}.example"]) for i in range(20)], concurrency=1)
    assert [r.action for r in results] == ["issued"] * 20, failure_message(results)
    assert env.client is not None and env.client.transport.pause.count > 10


def test_a_storm_of_bare_503_is_ridden_out(env: Env) -> None:
    env.fake.unavailable = 30
    results = env.run([CertSpec(f"c{i}", [f"c{i}.example"]) for i in range(20)], concurrency=1)
    assert [r.action for r in results] == ["issued"] * 20, failure_message(results)


def test_seventy_percent_rejected_nonces_are_ridden_out(env: Env) -> None:
    env.fake.nonce_reject = 70
    results = env.run([CertSpec(f"c{i}", [f"c{i}.example"]) for i in range(20)], concurrency=1)
    assert [r.action for r in results] == ["issued"] * 20, failure_message(results)
    assert env.client is not None and env.client.transport.bad_nonce_count > 100


# ------------------------------------------------------------------ an outage


def test_an_outage_fails_the_rest_of_the_batch_at_once_with_one_message(env: Env) -> None:
    keep = env.run([CertSpec(f"k{i}", [f"k{i}.example"]) for i in range(5)])
    before = {r.name: (env.cert_dir / f"{r.name}.pem").read_bytes() for r in keep}
    env.fake.requests.clear()
    env.fake.down_after = 60  # a few certificates in, the CA goes away
    specs = [CertSpec(f"c{i:03d}", [f"c{i:03d}.example"]) for i in range(100)]
    specs += [CertSpec(f"k{i}", [f"k{i}.example"]) for i in range(5)]
    started = env.clock.t
    results = env.run(specs, force=True, concurrency=4)
    failed = [r for r in results if r.action == "failed"]
    assert 95 <= len(failed) <= 105 and {r.action for r in results} == {"failed", "renewed", "issued"} - (
        set() if len(failed) < 100 else {"renewed"})
    # The breaker's one message; a request already in flight on another thread when the
    # breaker opened (at most one per worker) may end with its own, as clear, refusal.
    breaker = [r for r in failed if "unreachable since" in str(r.error)]
    in_flight = [r for r in failed if r not in breaker]
    assert len({str(r.error) for r in breaker}) == 1 and len(in_flight) <= 4, {str(r.error) for r in failed}
    assert all(str(r.error).startswith("cannot reach the ACME server at https://ca.test/") for r in in_flight)
    assert re.fullmatch(r"the ACME server https://ca\.test/dir is unreachable since \d{4}-\d\d-\d\dT[\d:]{8}Z: "
                        r"connection refused", str(breaker[0].error))
    assert env.clock.t - started < 4 * 10 + 1  # one budget (10 s), spent by each of 4 threads at most
    assert len(env.fake.requests) - 60 < 40  # the rest failed without a request
    message = failure_message(results)
    assert message is not None and message.count("unreachable since") == 1
    assert f"{len(failed)} of 105 certificates failed: certificates " in message and " more: the ACME server" in message
    for result in failed:
        path = env.cert_dir / f"{result.name}.pem"
        assert (path.read_bytes() == before[result.name]) if result.name in before else not path.exists()
    assert not [p for p in env.cert_dir.iterdir() if p.name.startswith(".") and p.name != INDEX_NAME]  # no temp file

    env.fake.down_after = None  # the CA is back: a rerun converges
    again = env.run(specs)
    assert {r.action for r in again} <= {"issued", "unchanged"}
    assert sum(r.action == "issued" for r in again) == len([r for r in failed if r.name not in before])


def test_an_outage_from_the_start_costs_one_budget(env: Env) -> None:
    env.fake.down = True
    started = env.clock.t
    results = env.run([CertSpec(f"c{i}", [f"c{i}.example"]) for i in range(50)], concurrency=4)
    assert {r.action for r in results} == {"failed"}
    assert {r.error for r in results if r.error and "unreachable since" in r.error} and \
        all("unreachable since" in str(r.error) for r in results)
    assert env.clock.t - started <= 10 + 4
    assert len(env.fake.requests) < 30


def test_an_outage_does_not_fail_certificates_that_are_fine(env: Env) -> None:
    """ARI is advice: with the CA gone, a valid certificate stays unchanged."""
    env.one("fine")
    env.fake.renewal_info = True
    env.fake.down = True
    result = env.one("fine", use_ari=True)
    assert (result.action, result.msg) == ("unchanged", None)
