# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Certificate transactions against the fake stats socket (HAProxy 2.6.12 behaviour)."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import (
    ConfigError,
    PemError,
    RuntimeApiBusy,
    RuntimeApiError,
    RuntimeApiVerifyError,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import certs
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import commands as cmd
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.certs import CertSession, Desired, decide
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.parse import parse_cert_detail
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.transport import RuntimeApi
from tests.unit.plugins.module_utils._haproxy.fake_haproxy import FakeHaproxy, State, Store
from tests.unit.plugins.module_utils._haproxy.testcerts import bundle, expired_bundle, mismatched_bundle, serial_of

DIR = "/etc/haproxy/certs"
A = f"{DIR}/a.test.pem"
B = f"{DIR}/b.test.pem"


class Clock:
    """Time moves only when the code sleeps; ``on_sleep`` lets a test act while we wait."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps = 0
        self.on_sleep: t.Callable[[int], None] = lambda n: None

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.sleeps += 1
        self.on_sleep(self.sleeps)

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def fake(tmp_path: Path) -> t.Iterator[FakeHaproxy]:
    with FakeHaproxy(tmp_path) as server:
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock()


def session(fake: FakeHaproxy, clock: Clock, wait: float = 1.0, abort_foreign: bool = False) -> CertSession:
    return CertSession(
        RuntimeApi(fake.socket, timeout=2), wait, abort_foreign, sleep=clock.sleep, clock=clock.monotonic
    )


def ensure(s: CertSession, want: Desired) -> tuple[certs.Plan, t.Any]:
    [(current, listed)] = s.observe([want])
    plan = decide(want, current, listed)
    if plan.steps:
        s.apply(want, plan)
        return plan, s.verify(want)
    return plan, current


def writes(fake: FakeHaproxy) -> list[str]:
    return [
        line.split()[0] + " " + line.split()[2]
        for line in fake.state.log
        if not line.startswith("show") and line != cmd.transaction_probe().line
    ]


# ----------------------------------------------------------------- decide

PEM_A = bundle(["a.test"])


def _runtime(status: str, pem: bytes | None = PEM_A) -> t.Any:
    state = State(stores={A: Store(pem.decode() if pem else None)}, lists={DIR: [A] if status == "Used" else []})
    from tests.unit.plugins.module_utils._haproxy.fake_haproxy import _show_cert

    return parse_cert_detail(_show_cert(state, [A], None))


@pytest.mark.parametrize(
    ("current", "listed", "action", "steps"),
    [
        (None, None, "created", ("new", "set", "commit", "add")),
        ("Empty", None, "created", ("set", "commit", "add")),
        ("Used", None, "unchanged", ()),
        ("Used", True, "unchanged", ()),
        ("Used", False, "updated", ("add",)),
        ("Unused", None, "updated", ("add",)),
        ("Used-other", None, "updated", ("set", "commit")),
        ("Unused-other", None, "updated", ("set", "commit", "add")),
    ],
)
def test_decide_present(current: str | None, listed: bool | None, action: str, steps: tuple[str, ...]) -> None:
    want = certs.desired_present(A, PEM_A)
    runtime = None
    if current == "Empty":
        runtime = _runtime("Empty", None)
    elif current is not None:
        status, _, other = current.partition("-")
        runtime = _runtime(status, bundle(["a.test"]) if other else PEM_A)
    plan = decide(want, runtime, listed)
    assert (plan.action, plan.steps) == (action, steps)


@pytest.mark.parametrize(
    ("current", "action", "steps"),
    [
        (None, "unchanged", ()),
        ("Empty", "removed", ("del",)),
        ("Unused", "removed", ("del",)),
        ("Used", "removed", ("del_list", "del")),
    ],
)
def test_decide_absent(current: str | None, action: str, steps: tuple[str, ...]) -> None:
    runtime = None if current is None else _runtime(current, None if current == "Empty" else PEM_A)
    plan = decide(certs.desired_absent(A), runtime)
    assert (plan.action, plan.steps) == (action, steps)


def test_chain_change_is_an_update() -> None:
    leaf_and_key = PEM_A.split(b"-----END CERTIFICATE-----\n", 1)
    key = PEM_A[PEM_A.index(b"-----BEGIN PRIVATE KEY") :]
    without_chain = leaf_and_key[0] + b"-----END CERTIFICATE-----\n" + key
    plan = decide(certs.desired_present(A, without_chain), _runtime("Used"))
    assert (plan.action, plan.reason, plan.steps) == ("updated", "new chain", ("set", "commit"))


@pytest.mark.parametrize(
    ("path", "pem", "error", "text"),
    [
        ("etc/haproxy/certs/a.pem", PEM_A, ConfigError, "absolute"),
        (f"{DIR}/a\nshow info", PEM_A, ConfigError, "nothing was sent"),
        (A, mismatched_bundle(["a.test"]), PemError, "does not match"),
        (A, expired_bundle(["a.test"]), PemError, "expired"),
        (A, b"garbage", PemError, "no PEM certificate"),
    ],
)
def test_desired_present_refuses(path: str, pem: bytes, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        certs.desired_present(path, pem)


def test_desired_present_checks_domains_and_size() -> None:
    with pytest.raises(PemError, match=r"does not cover www\.a\.test"):
        certs.desired_present(A, PEM_A, expected_domains=["a.test", "www.a.test"])
    with pytest.raises(ConfigError, match=r"tune\.bufsize"):
        certs.desired_present(A, PEM_A, bufsize=1024)


# ---------------------------------------------------------------- sessions


def test_new_then_unchanged(fake: FakeHaproxy, clock: Clock) -> None:
    s = session(fake, clock)
    want = certs.desired_present(A, PEM_A)
    plan, after = ensure(s, want)
    assert plan.action == "created"
    assert after.used and after.serial == serial_of(PEM_A)
    assert writes(fake) == ["new cert", "set cert", "commit cert", "add crt-list"]
    fake.state.log.clear()
    plan, _ = ensure(s, want)
    assert plan.action == "unchanged"
    assert writes(fake) == []  # nothing but 'show' was sent


def test_update_existing(fake: FakeHaproxy, clock: Clock) -> None:
    fake.add(A, PEM_A)
    new = bundle(["a.test"])
    plan, after = ensure(session(fake, clock), certs.desired_present(A, new))
    assert (plan.action, plan.reason) == ("updated", "new serial")
    assert after.serial == serial_of(new)
    assert writes(fake) == ["set cert", "commit cert"]


def test_empty_store_left_by_new_ssl_cert_is_filled_and_served(fake: FakeHaproxy, clock: Clock) -> None:
    fake.add(A, None, None)
    plan, after = ensure(session(fake, clock), certs.desired_present(A, PEM_A))
    assert plan.action == "created"
    assert after.used
    assert writes(fake) == ["set cert", "commit cert", "add crt-list"]


def test_unused_same_certificate_is_attached(fake: FakeHaproxy, clock: Clock) -> None:
    fake.add(A, PEM_A, None)
    plan, after = ensure(session(fake, clock), certs.desired_present(A, PEM_A))
    assert plan.action == "updated" and "attached" in plan.reason
    assert after.used
    assert writes(fake) == ["add crt-list"]


def test_explicit_crt_list(fake: FakeHaproxy, clock: Clock) -> None:
    fake.state.lists["/etc/haproxy/other"] = []
    fake.add("/etc/haproxy/other/a.pem", PEM_A)  # Used via the default directory list...
    fake.state.lists[DIR].remove("/etc/haproxy/other/a.pem")
    fake.state.lists["/etc/haproxy/other"].append("/etc/haproxy/other/a.pem")
    want = certs.desired_present("/etc/haproxy/other/a.pem", PEM_A, crt_list="/etc/haproxy/other")
    plan, _ = ensure(session(fake, clock), want)
    assert plan.action == "unchanged"


def test_unknown_crt_list_is_reported(fake: FakeHaproxy, clock: Clock) -> None:
    want = certs.desired_present(A, PEM_A, crt_list="/etc/haproxy/nope")
    with pytest.raises(RuntimeApiError, match="didn't find"):
        session(fake, clock).observe([want])


def test_absent(fake: FakeHaproxy, clock: Clock) -> None:
    fake.add(A, PEM_A)
    plan, after = ensure(session(fake, clock), certs.desired_absent(A))
    assert plan.action == "removed" and after is None
    assert A not in fake.state.stores
    assert writes(fake) == ["del crt-list", "del cert"]
    plan, _ = ensure(session(fake, clock), certs.desired_absent(A))
    assert plan.action == "unchanged"


def test_absent_but_used_elsewhere_fails_clearly(fake: FakeHaproxy, clock: Clock) -> None:
    fake.state.lists["/etc/haproxy/list.txt"] = [A]
    fake.add(A, PEM_A, None)
    with pytest.raises(RuntimeApiError, match="in use"):
        ensure(session(fake, clock), certs.desired_absent(A))


def test_locked_is_retried(fake: FakeHaproxy, clock: Clock) -> None:
    fake.state.locked = 3
    plan, after = ensure(session(fake, clock), certs.desired_present(A, PEM_A))
    assert plan.action == "created" and after.used
    assert fake.state.locked == 0 and clock.sleeps >= 2


def test_locked_for_too_long_is_busy(fake: FakeHaproxy, clock: Clock) -> None:
    fake.add(A, PEM_A)
    s = session(fake, clock, wait=0.5)
    want = certs.desired_present(A, bundle(["a.test"]))
    [(current, listed)] = s.observe([want])
    fake.state.locked = 10_000
    with pytest.raises(RuntimeApiBusy, match="locked"):
        s.apply(want, decide(want, current, listed))
    assert fake.state.transaction is None


def _foreign(fake: FakeHaproxy, name: str = B) -> None:
    """Another client opened a transaction with 'new' + 'set' and did not commit."""
    fake.add(name, None, None)
    fake.state.transaction = (name, Store(bundle(["b.test"]).decode()))


def test_foreign_transaction_waited_then_reported(fake: FakeHaproxy, clock: Clock) -> None:
    _foreign(fake)
    with pytest.raises(RuntimeApiBusy, match=rf"transaction on {B} has been open for more than 1 s") as info:
        ensure(session(fake, clock, wait=1.0), certs.desired_present(A, PEM_A))
    assert info.value.context["transaction"] == B
    assert clock.now >= 1.0
    assert fake.state.transaction is not None and fake.state.transaction[0] == B  # theirs, untouched
    assert A not in fake.state.stores  # our empty store was cleaned up


def test_foreign_transaction_that_ends_is_waited_for(fake: FakeHaproxy, clock: Clock) -> None:
    _foreign(fake)

    def finish(sleeps: int) -> None:
        if sleeps == 4:
            fake.state.transaction = None

    clock.on_sleep = finish
    plan, after = ensure(session(fake, clock, wait=5.0), certs.desired_present(A, PEM_A))
    assert plan.action == "created" and after.used
    assert clock.sleeps == 4


def test_stale_foreign_transaction_aborted_on_request(fake: FakeHaproxy, clock: Clock) -> None:
    _foreign(fake)
    s = session(fake, clock, wait=0.2, abort_foreign=True)
    _plan, after = ensure(s, certs.desired_present(A, PEM_A))
    assert after.used
    assert s.aborted == [B]
    assert fake.state.transaction is None


def test_haproxy_26_set_into_foreign_transaction_is_caught(fake: FakeHaproxy, clock: Clock) -> None:
    # A foreign transaction opens between our check and our 'set': 2.6 writes our payload into it.
    fake.add(B, bundle(["b.test"]))
    fake.state.hooks["set ssl cert"] = lambda state: setattr(
        state, "transaction", (B, Store(bundle(["b.test"]).decode()))
    )
    s = session(fake, clock)
    _plan, after = ensure(s, certs.desired_present(A, PEM_A))
    assert after.used and after.serial == serial_of(PEM_A)
    assert s.aborted == [B]
    assert any("HAProxy 2.6" in w for w in s.warnings)
    b = parse_cert_detail(s.api.run(certs.cmd.show_cert(B)))
    assert "a.test" not in b.domains  # B never got our certificate
    assert fake.state.transaction is None


def test_haproxy_3_refusal_is_waited_for(fake: FakeHaproxy, clock: Clock) -> None:
    fake.state.v26_set_bug = False
    fake.add(B, bundle(["b.test"]))
    fake.state.hooks["set ssl cert"] = lambda state: setattr(
        state, "transaction", (B, Store(bundle(["b.test"]).decode()))
    )
    clock.on_sleep = lambda n: setattr(fake.state, "transaction", None) if n == 2 else None
    _plan, after = ensure(session(fake, clock), certs.desired_present(A, PEM_A))
    assert after.used


def test_transaction_taken_from_us_is_sent_again(fake: FakeHaproxy, clock: Clock) -> None:
    # Another client aborted our transaction between our 'set' and our 'commit'.
    fake.state.hooks["commit ssl cert"] = lambda state: setattr(state, "transaction", None)
    s = session(fake, clock)
    plan, after = ensure(s, certs.desired_present(A, PEM_A))
    assert plan.action == "created" and after.used
    assert writes(fake) == ["new cert", "set cert", "commit cert", "set cert", "commit cert", "add crt-list"]
    assert any("taken away" in w for w in s.warnings)


def _pollute(state: State) -> None:
    """Another client's 'set ssl cert' for another name lands in our open transaction (2.6)."""
    assert state.transaction is not None
    state.transaction = (state.transaction[0], Store(bundle(["intruder.test"]).decode()))


def test_polluted_transaction_is_set_again_before_commit(fake: FakeHaproxy, clock: Clock) -> None:
    fake.state.after["set ssl cert"] = _pollute
    s = session(fake, clock)
    s._contended = True  # another client was seen earlier in this session
    _plan, after = ensure(s, certs.desired_present(A, PEM_A))
    assert after.used and after.serial == serial_of(PEM_A)
    assert writes(fake) == ["new cert", "set cert", "set cert", "commit cert", "add crt-list"]
    assert any("replaced ours in the open transaction" in w for w in s.warnings)


def test_polluted_transaction_without_contention_is_repaired_after_commit(fake: FakeHaproxy, clock: Clock) -> None:
    fake.state.after["set ssl cert"] = _pollute
    s = session(fake, clock)
    _plan, after = ensure(s, certs.desired_present(A, PEM_A))
    assert after.used and after.serial == serial_of(PEM_A)
    assert writes(fake) == ["new cert", "set cert", "commit cert", "set cert", "commit cert", "add crt-list"]
    assert s._contended


def test_no_extra_round_trips_without_contention(fake: FakeHaproxy, clock: Clock) -> None:
    fake.add(A, PEM_A)
    _plan, after = ensure(session(fake, clock), certs.desired_present(A, bundle(["a.test"])))
    assert after.used
    reads = [line for line in fake.state.log if line.startswith("show") or line == cmd.transaction_probe().line]
    # observe, the transaction probe before 'set', the read-back after 'commit' (reused by verify)
    assert reads == [f"show ssl cert {A}", cmd.transaction_probe().line, f"show ssl cert {A}"]


def test_foreign_payload_committed_under_our_name_is_repaired(fake: FakeHaproxy, clock: Clock) -> None:
    fake.state.hooks["commit ssl cert"] = _pollute  # after our check, right before the commit
    s = session(fake, clock)
    _plan, after = ensure(s, certs.desired_present(A, PEM_A))
    assert after.used and after.serial == serial_of(PEM_A) and after.domains == ["a.test"]
    assert any("committed another client's payload" in w for w in s.warnings)


def test_commit_failure_aborts_and_cleans_up(fake: FakeHaproxy, clock: Clock) -> None:
    # HAProxy refuses the commit (here: the key in its transaction does not match).
    def corrupt(state: State) -> None:
        assert state.transaction is not None
        state.transaction = (state.transaction[0], Store(mismatched_bundle(["a.test"]).decode()))

    fake.state.hooks["commit ssl cert"] = corrupt
    with pytest.raises(RuntimeApiError, match="inconsistencies"):
        ensure(session(fake, clock), certs.desired_present(A, PEM_A))
    assert fake.state.transaction is None
    assert A not in fake.state.stores
    assert writes(fake)[-2:] == ["abort cert", "del cert"]


def test_failed_update_keeps_the_served_certificate(fake: FakeHaproxy, clock: Clock) -> None:
    fake.add(A, PEM_A)
    # The lock stays held past our wait for the commit, then frees: the abort still gets through.
    fake.state.hooks["commit ssl cert"] = lambda state: setattr(state, "locked", 30)
    s = session(fake, clock, wait=0.2)
    with pytest.raises(RuntimeApiBusy):
        ensure(s, certs.desired_present(A, bundle(["a.test"])))
    assert fake.state.transaction is None  # aborted
    assert s.warnings == []
    assert fake.state.stores[A].pem == PEM_A.decode()
    assert A in fake.state.lists[DIR]


def test_cleanup_that_cannot_get_through_is_reported(fake: FakeHaproxy, clock: Clock) -> None:
    fake.state.hooks["commit ssl cert"] = lambda state: setattr(state, "locked", 10_000)
    s = session(fake, clock, wait=0.2)
    with pytest.raises(RuntimeApiBusy):
        ensure(s, certs.desired_present(A, PEM_A))
    assert any(f"'abort ssl cert {A}'" in w and "by hand" in w for w in s.warnings)


def test_attach_failure_cleans_up_new_store(fake: FakeHaproxy, clock: Clock) -> None:
    fake.state.lists["/etc/haproxy/other"] = []
    want = certs.desired_present("/srv/elsewhere/a.pem", PEM_A, crt_list="/etc/haproxy/other")
    with pytest.raises(RuntimeApiError, match="must contain the directory path"):
        ensure(session(fake, clock), want)
    assert "/srv/elsewhere/a.pem" not in fake.state.stores
    assert fake.state.transaction is None


def test_verify_requires_used(fake: FakeHaproxy, clock: Clock) -> None:
    s = session(fake, clock)
    want = certs.desired_present(A, PEM_A)
    [(current, listed)] = s.observe([want])
    # 'add ssl crt-list' answers Success but leaves it in no list: the read-back sent with it sees Unused
    fake.state.after["add ssl crt-list"] = lambda state: state.lists[DIR].remove(A)
    s.apply(want, decide(want, current, listed))
    with pytest.raises(RuntimeApiVerifyError, match="Status Unused"):
        s.verify(want)


def test_verify_requires_new_serial(fake: FakeHaproxy, clock: Clock) -> None:
    fake.add(A, bundle(["a.test"]))
    with pytest.raises(RuntimeApiVerifyError, match="after commit HAProxy holds serial"):
        session(fake, clock).verify(certs.desired_present(A, PEM_A))
