# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The renewal decision as a table: file, what is asked, ARI window -> (renew?, reason)."""

from __future__ import annotations

import datetime as dt
import typing as t

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.ari import RenewalWindow
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.renewal import decide
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
                 "29.5 days left, fewer than remaining_days (30)", id="due"),
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


def test_usable_bundle_is_returned() -> None:
    decision = decide(make_bundle(DOMAINS), DOMAINS, "ec256", 30, now=NOW)
    assert decision.bundle is not None
    assert decision.bundle.info().domains == tuple(DOMAINS)
