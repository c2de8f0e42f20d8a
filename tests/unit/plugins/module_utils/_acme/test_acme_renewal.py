# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The renewal decision as a table: file, what is asked, ARI window -> (renew?, reason)."""

from __future__ import annotations

import datetime as dt
import json
import typing as t

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import profiles
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.ari import RenewalWindow
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.renewal import current, decide, facts_of
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.timing import lifetime_threshold
from tests.unit.plugins.module_utils._acme.bundles import NOW, make_bundle

DOMAINS = ["a.example", "www.a.example"]
DAY = dt.timedelta(days=1)
PAST_WINDOW = RenewalWindow(NOW - 2 * DAY, NOW - DAY)
FUTURE_WINDOW = RenewalWindow(NOW + 10 * DAY, NOW + 11 * DAY, "https://ca.example/why")
OPEN_WINDOW = RenewalWindow(NOW - DAY, NOW - DAY + dt.timedelta(seconds=1), "https://ca.example/why")

TABLE: list[t.Any] = [
    # existing bundle (factory), asked key type, remaining_days, force, ARI window, renew?, reason fragment
    pytest.param(lambda: None, "ec256", 30, False, None, True, "no certificate yet", id="missing"),
    pytest.param(lambda: b"garbage", "ec256", 30, False, None, True, "unusable (no PEM certificate found)", id="garbage"),
    pytest.param(lambda: make_bundle(DOMAINS, with_key=False), "ec256", 30, False, None, True,
                 "holds no private key", id="no-key"),
    pytest.param(lambda: make_bundle(DOMAINS, wrong_key=True), "ec256", 30, False, None, True,
                 "does not match", id="key-mismatch"),
    pytest.param(lambda: make_bundle(DOMAINS, days_left=-1), "ec256", 30, False, None, True, "expired", id="expired"),
    pytest.param(lambda: make_bundle(["a.example"]), "ec256", 30, False, None, True,
                 "the domains differ (the certificate has a.example)", id="fewer-names"),
    pytest.param(lambda: make_bundle([*DOMAINS, "b.example"]), "ec256", 30, False, None, True,
                 "the domains differ", id="more-names"),
    pytest.param(lambda: make_bundle(list(reversed(DOMAINS))), "ec256", 30, False, None, False,
                 "valid, 60.0 days left", id="order-of-names-irrelevant"),
    pytest.param(lambda: make_bundle(DOMAINS, key_type="rsa2048"), "ec256", 30, False, None, True,
                 "the key type differs (the certificate has rsa2048, ec256 is asked)", id="key-type"),
    pytest.param(lambda: make_bundle(DOMAINS, key_type="ec384"), "ec384", 30, False, None, False,
                 "valid", id="ec384-ok"),
    pytest.param(lambda: make_bundle(DOMAINS, days_left=29.5), "ec256", 30, False, None, True,
                 "29.5 days left of 90.0, fewer than remaining_days (30)", id="due"),
    pytest.param(lambda: make_bundle(DOMAINS, days_left=30.5), "ec256", 30, False, None, False,
                 "valid, 30.5 days left", id="not-yet-due"),
    pytest.param(lambda: make_bundle(DOMAINS, days_left=60), "ec256", 0, False, None, False, "valid", id="zero-days"),
    pytest.param(lambda: make_bundle(DOMAINS), "ec256", 30, True, None, True, "force is set", id="force"),
    pytest.param(lambda: make_bundle(DOMAINS), "ec256", 30, False, PAST_WINDOW, True,
                 "renewal window (ARI) opened at", id="ari-passed"),
    pytest.param(lambda: make_bundle(DOMAINS), "ec256", 30, False, OPEN_WINDOW, True,
                 "see https://ca.example/why", id="ari-open"),
    pytest.param(lambda: make_bundle(DOMAINS), "ec256", 30, False, FUTURE_WINDOW, False, "valid", id="ari-future"),
    pytest.param(lambda: make_bundle(DOMAINS, aki=None), "ec256", 30, False, PAST_WINDOW, False,
                 "valid", id="ari-needs-aki"),
    pytest.param(lambda: make_bundle(DOMAINS), None, 30, False, None, False, "valid", id="any-key-type"),
]


@pytest.mark.parametrize(("existing", "key_type", "remaining", "force", "window", "renew", "reason"), TABLE)
def test_decide(existing: t.Callable[[], bytes | None], key_type: str | None, remaining: float, force: bool,
                window: RenewalWindow | None, renew: bool, reason: str) -> None:
    decision = decide(existing(), DOMAINS, key_type, remaining, force=force, ari_window=window, now=NOW)
    needs, why = decision
    assert needs is renew
    assert reason in why


@pytest.mark.parametrize(("existing", "key_type", "remaining", "force", "window", "renew", "reason"), TABLE)
def test_decide_from_the_index_is_the_same(existing: t.Callable[[], bytes | None], key_type: str | None,
                                           remaining: float, force: bool, window: RenewalWindow | None,
                                           renew: bool, reason: str) -> None:
    """The facts an index keeps (facts_of, through JSON) decide as the bytes do, without parsing again."""
    data = existing()
    direct = decide(data, DOMAINS, key_type, remaining, force=force, ari_window=window, now=NOW)
    if data is None:
        return
    facts = json.loads(json.dumps(facts_of(data)))

    def load() -> t.NoReturn:
        raise AssertionError("the bundle was parsed")

    known = current(facts, load)
    indexed = decide(known, DOMAINS, key_type, remaining, force=force, ari_window=window, now=NOW)
    got = (indexed.needs_renewal, indexed.reason, indexed.by_timing)
    assert got == (direct.needs_renewal, direct.reason, direct.by_timing)
    if direct.bundle is not None:
        assert indexed.bundle is not None and indexed.bundle.info() == direct.bundle.info()
        assert indexed.bundle.cert_id == direct.bundle.cert_id


def test_facts_hold_no_key_material() -> None:
    data = make_bundle(DOMAINS)
    text = json.dumps(facts_of(data))
    assert "PRIVATE" not in text and "BEGIN" not in text
    assert sorted(facts_of(data)) == ["cert_id", "info", "problem", "profile"]


def test_usable_bundle_is_returned() -> None:
    decision = decide(make_bundle(DOMAINS), DOMAINS, "ec256", 30, now=NOW)
    assert decision.bundle is not None
    assert decision.bundle.info().domains == tuple(DOMAINS)


# ------------------------------------------------------------ lifetimes, ARI, remaining_days

SOON = RenewalWindow(NOW + DAY, NOW + DAY + dt.timedelta(seconds=1))


def _cert(lifetime: float, left: float) -> t.Callable[[], bytes]:
    return lambda: make_bundle(DOMAINS, lifetime=lifetime, days_left=left)


LIFETIMES: list[t.Any] = [
    # lifetime, days left, remaining_days, ARI window, renew?, reason fragment
    pytest.param(90, 31, None, None, False, "the lifetime rule renews below 30.0", id="90d-keep"),
    pytest.param(90, 29, None, None, True, "less than a third of its lifetime (30.0 days)", id="90d-due"),
    pytest.param(64, 22, None, None, False, "renews below 21.3", id="64d-keep"),
    pytest.param(64, 21, None, None, True, "less than a third", id="64d-due"),
    pytest.param(45, 16, None, None, False, "renews below 15.0", id="45d-keep"),
    pytest.param(45, 14.9, None, None, True, "(15.0 days)", id="45d-due"),
    pytest.param(6, 3.1, None, None, False, "renews below 3.0", id="6d-keep"),
    pytest.param(6, 2.9, None, None, True, "less than half of its lifetime (3.0 days)", id="6d-due"),
    pytest.param(6.67, 3.4, None, None, False, "renews below 3.3", id="160h-keep"),
    # The CA's window wins over the lifetime rule, both ways.
    pytest.param(90, 29, None, FUTURE_WINDOW, False, "the CA's renewal window (ARI) says renew after", id="90d-ari-later"),
    pytest.param(90, 50, None, PAST_WINDOW, True, "renewal window (ARI) opened", id="90d-ari-now"),
    pytest.param(45, 14, None, SOON, False, "(ARI) says renew after", id="45d-ari-later"),
    pytest.param(45, 40, None, PAST_WINDOW, True, "(ARI) opened", id="45d-ari-now"),
    pytest.param(64, 40, None, PAST_WINDOW, True, "(ARI) opened", id="64d-ari-now"),
    pytest.param(6, 2.9, None, SOON, False, "(ARI) says renew after", id="6d-ari-later"),
    pytest.param(6, 5, None, PAST_WINDOW, True, "(ARI) opened", id="6d-ari-now"),
    # A window that opens only after the certificate expired cannot be followed.
    pytest.param(6, 2, None, FUTURE_WINDOW, True, "less than half", id="6d-ari-after-expiry"),
    # An explicit remaining_days below the lifetime: it decides, and renews earlier than ARI would.
    pytest.param(90, 40, 45, None, True, "fewer than remaining_days (45)", id="90d-explicit-due"),
    pytest.param(90, 50, 45, None, False, "remaining_days (45) decides", id="90d-explicit-keep"),
    pytest.param(90, 40, 45, FUTURE_WINDOW, True, "fewer than remaining_days (45)", id="90d-explicit-before-ari"),
    pytest.param(90, 50, 45, FUTURE_WINDOW, False, "(ARI) says renew after", id="90d-explicit-and-ari-keep"),
    pytest.param(45, 20, 10, PAST_WINDOW, True, "(ARI) opened", id="45d-ari-before-explicit"),
    # remaining_days at or above the lifetime would renew on every run: the lifetime rule decides.
    pytest.param(6, 5.9, 30, None, False, "remaining_days (30) is not below the certificate's lifetime", id="6d-30"),
    pytest.param(6, 2.9, 30, None, True, "less than half of its lifetime (3.0 days); remaining_days (30) is not below",
                 id="6d-30-due"),
    pytest.param(45, 44, 45, None, False, "so the lifetime rule decides", id="45d-45"),
    pytest.param(45, 44, 60, PAST_WINDOW, True, "(ARI) opened", id="45d-60-ari"),
    pytest.param(64, 63.9, 90, None, False, "the lifetime rule renews below 21.3", id="64d-90"),
]


@pytest.mark.parametrize(("lifetime", "left", "remaining", "window", "renew", "reason"), LIFETIMES)
def test_lifetime_rule(lifetime: float, left: float, remaining: float | None, window: RenewalWindow | None,
                       renew: bool, reason: str) -> None:
    decision = decide(_cert(lifetime, left)(), DOMAINS, "ec256", remaining, ari_window=window, now=NOW)
    assert (decision.needs_renewal, decision.by_timing) == (renew, True)
    assert reason in decision.reason
    assert decision.reason.startswith("valid, ") is not renew


@pytest.mark.parametrize(("lifetime", "threshold"), [(90, 30), (64, 64 / 3), (45, 15), (10, 10 / 3), (9.9, 4.95),
                                                     (6, 3), (1, 0.5)])
def test_lifetime_threshold(lifetime: float, threshold: float) -> None:
    assert lifetime_threshold(lifetime) == pytest.approx(threshold)


@pytest.mark.parametrize("lifetime", [6, 6.67, 45, 64, 90])
@pytest.mark.parametrize("remaining", [None, 0, 1, 30, 90, 365])
def test_a_fresh_certificate_is_never_due(lifetime: float, remaining: int | None) -> None:
    """No setting renews on every run: a certificate just issued is kept."""
    fresh = make_bundle(DOMAINS, lifetime=lifetime, days_left=lifetime - 0.01)
    assert not decide(fresh, DOMAINS, "ec256", remaining, now=NOW).needs_renewal


PROFILES: list[t.Any] = [
    # recorded in the bundle, asked, renew?, reason fragment
    pytest.param(None, None, False, "valid", id="none"),
    pytest.param("classic", None, False, "valid", id="unset-keeps-any"),
    pytest.param(None, "shortlived", False, "valid", id="unrecorded-waits-for-next-renewal"),
    pytest.param("shortlived", "shortlived", False, "valid", id="same"),
    pytest.param("classic", "shortlived", True,
                 "the profile differs (the certificate was ordered with 'classic', 'shortlived' is asked)", id="changed"),
]


@pytest.mark.parametrize(("had", "asked", "renew", "reason"), PROFILES)
def test_profile_change(had: str | None, asked: str | None, renew: bool, reason: str) -> None:
    existing = profiles.record(make_bundle(DOMAINS), had)
    decision = decide(existing, DOMAINS, "ec256", None, profile=asked, now=NOW)
    assert decision.needs_renewal is renew
    assert reason in decision.reason
