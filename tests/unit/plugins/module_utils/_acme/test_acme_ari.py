# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ARI (RFC 9773): certID, window parsing, the choice of a renewal time, the look-up."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import ari
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.transport import Transport
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import load_certificates
from tests.unit.plugins.module_utils._acme.bundles import NOW, make_bundle
from tests.unit.plugins.module_utils._acme.conftest import FakeClock
from tests.unit.plugins.module_utils._acme.fake_acme import FakeAcme

UTC = dt.timezone.utc


def _leaf(**kwargs: object) -> x509.Certificate:
    return load_certificates(make_bundle(**kwargs))[0]  # type: ignore[arg-type]


def test_cert_id_rfc9773_example() -> None:
    # RFC 9773 section 4.1: AKI 69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4, serial 0x87654321.
    aki = bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4")
    assert ari.cert_id(_leaf(aki=aki, serial=0x87654321)) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"


@pytest.mark.parametrize(("serial", "encoded"), [(0x7F, "fw"), (0x80, "AIA"), (0x0100, "AQA"), (0x01, "AQ")])
def test_cert_id_serial_is_der_integer_content(serial: int, encoded: str) -> None:
    assert ari.cert_id(_leaf(serial=serial, aki=b"\x01")) == f"AQ.{encoded}"


def test_cert_id_without_aki() -> None:
    assert ari.cert_id(_leaf(aki=None)) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("2025-01-02T04:00:00Z", dt.datetime(2025, 1, 2, 4, tzinfo=UTC)),
    ("2025-01-02T04:00:00.123456789Z", dt.datetime(2025, 1, 2, 4, 0, 0, 123456, tzinfo=UTC)),
    ("2025-01-02T06:30:00+02:30", dt.datetime(2025, 1, 2, 4, tzinfo=UTC)),
    ("2025-01-02t04:00:00z", dt.datetime(2025, 1, 2, 4, tzinfo=UTC)),
    ("2025-13-02T04:00:00Z", None),
    ("yesterday", None),
    (None, None),
])
def test_parse_time(text: object, expected: dt.datetime | None) -> None:
    assert ari.parse_time(text) == expected


@pytest.mark.parametrize(("data", "ok"), [
    ({"suggestedWindow": {"start": "2025-01-02T00:00:00Z", "end": "2025-01-03T00:00:00Z"}}, True),
    ({"suggestedWindow": {"start": "2025-01-03T00:00:00Z", "end": "2025-01-02T00:00:00Z"}}, False),
    ({"suggestedWindow": {"start": "2025-01-02T00:00:00Z"}}, False),
    ({}, False),
])
def test_parse_window(data: dict[str, object], ok: bool) -> None:
    assert (ari.parse_window(data) is not None) is ok


def test_renewal_time_is_inside_the_window_stable_and_spread() -> None:
    window = ari.RenewalWindow(NOW, NOW + dt.timedelta(days=2))
    times = [window.renewal_time(f"id{i}") for i in range(50)]
    assert all(window.start <= moment <= window.end for moment in times)
    assert window.renewal_time("id1") == times[1]
    assert len(set(times)) == 50
    assert not window.due("id1", window.start - dt.timedelta(seconds=1))
    assert window.due("id1", window.end)


def test_fetch_window_and_absence(clock: FakeClock) -> None:
    fake = FakeAcme(renewal_info=True, ari_window=(NOW, NOW + dt.timedelta(days=1)))
    transport = Transport(session=fake, clock=clock)
    window = ari.fetch_window(transport, "https://ca.test/renewal-info", "AQ.AQ")
    assert window == ari.RenewalWindow(NOW, NOW + dt.timedelta(days=1))
    assert fake.requests[-1] == ("GET", "https://ca.test/renewal-info/AQ.AQ")
    fake.ari_window = None  # the CA answers 404: treated as "no advice"
    assert ari.fetch_window(transport, "https://ca.test/renewal-info/", "AQ.AQ") is None
