# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Today's CAs against a real pebble that has profiles and ARI (2.10; ``TLSOPS_LAB_PEBBLE``).

The lab offers two profiles, ``default`` (90 days) and ``shortlived`` (6 days), as Let's
Encrypt offers ``classic`` and ``shortlived``. Every module runs as a process of its own,
as on a host; orders are counted from pebble's own log. On a pebble without profiles
(Debian 12's 2.4) the module is skipped: the ``pebble_2_10`` stage of ``make test`` runs it.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.ari import cert_id
from tests.integration.test_acme_modules import acme_args, run_module, verify_chain
from tests.lab.lab import Lab, LabInfo, count_orders, ec_thumbprint, find_pebble

DAY = 86400
PROFILES = {"default": 90 * DAY, "shortlived": 6 * DAY}

pytestmark = pytest.mark.skipif(
    find_pebble().version < (2, 8),
    reason=f"needs a pebble with profiles and ARI overrides (2.8+), this is {find_pebble().release}",
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Lab]:
    """One lab for the module, with both profiles (and so, in pebble, a random one for an order naming none)."""
    lab = Lab(tmp_path_factory.mktemp("lab-profiles"), profiles=PROFILES)
    lab.start()
    yield lab
    lab.stop()


@pytest.fixture
def info(lab: Lab) -> LabInfo:
    assert lab.info is not None
    return lab.info


@pytest.fixture
def cert_dir(tmp_path: Path) -> Path:
    path = tmp_path / "certs"
    path.mkdir()
    return path


def _leaf(path: Path) -> x509.Certificate:
    data = path.read_bytes()
    return x509.load_pem_x509_certificate(data[data.index(b"-----BEGIN CERTIFICATE-----"):])


def _lifetime_days(cert: x509.Certificate) -> float:
    return (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds() / DAY


def _order(info: LabInfo, cert_dir: Path, tmp_path: Path, **args: t.Any) -> dict[str, t.Any]:
    return run_module("acme_stateless_order", acme_args(info, cert_dir, **args), tmp_path)


def _new_account_key(tmp_path: Path) -> tuple[Path, str]:
    """Another account's key file and its thumbprint (computed by the lab, not the collection)."""
    path = tmp_path / "other-account.key"
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    path.chmod(0o600)
    return path, ec_thumbprint(key)


def test_the_profile_asked_sets_the_lifetime(lab: Lab, info: LabInfo, cert_dir: Path, tmp_path: Path) -> None:
    result = _order(info, cert_dir, tmp_path, certificates=[
        {"name": "short", "domains": ["short.profiles.example"], "profile": "shortlived"},
        {"name": "long", "domains": ["long.profiles.example"]},
    ], profile="default")
    got = [(c["action"], c["profile"]) for c in result["certificates"]]
    assert got == [("issued", "shortlived"), ("issued", "default")], result
    short, long_ = _leaf(cert_dir / "short.pem"), _leaf(cert_dir / "long.pem")
    assert _lifetime_days(short) < 7
    assert round(_lifetime_days(long_)) == 90
    assert (cert_dir / "short.pem").read_bytes().startswith(b"# acme-profile: shortlived\n")
    verify_chain(info, cert_dir / "short.pem")  # the profile line does not stop openssl


def test_an_unknown_profile_names_the_offered_ones(info: LabInfo, cert_dir: Path, tmp_path: Path) -> None:
    result = _order(info, cert_dir, tmp_path, certificates=[
        {"name": "bad", "domains": ["bad.profiles.example"], "profile": "sixday"},
        {"name": "good", "domains": ["good.profiles.example"], "profile": "shortlived"},
    ])
    assert result["failed"]
    bad, good = result["certificates"]
    assert bad["action"] == "failed"
    assert "profile 'sixday' is not offered by the CA" in bad["msg"]
    assert bad["msg"].endswith("it offers: default, shortlived"), bad["msg"]
    assert good["action"] == "issued"
    assert not (cert_dir / "bad.pem").exists()


def test_ten_runs_over_a_6_day_and_a_90_day_certificate_place_no_order(
        lab: Lab, info: LabInfo, cert_dir: Path, tmp_path: Path) -> None:
    certificates = [
        {"name": "six", "domains": ["six.runs.example"], "profile": "shortlived"},
        {"name": "ninety", "domains": ["ninety.runs.example"], "profile": "default"},
    ]
    first = _order(info, cert_dir, tmp_path, certificates=certificates)
    assert [c["action"] for c in first["certificates"]] == ["issued", "issued"], first
    before = count_orders(lab.pebble_log())
    reasons = []
    for _ in range(10):
        result = _order(info, cert_dir, tmp_path, certificates=certificates)
        assert not result["changed"], result
        reasons = [c["reason"] for c in result["certificates"]]
    assert count_orders(lab.pebble_log()) == before
    # pebble offers ARI: its window decides, both for 6 and for 90 days.
    assert all("the CA's renewal window (ARI) says renew after" in r for r in reasons), reasons
    # Without ARI the lifetime rule decides, and still orders nothing.
    plain = _order(info, cert_dir, tmp_path, certificates=certificates, use_ari=False, remaining_days=30)
    assert [c["action"] for c in plain["certificates"]] == ["unchanged", "unchanged"]
    six, ninety = (c["reason"] for c in plain["certificates"])
    assert "the lifetime rule renews below 3.0; remaining_days (30) is not below" in six, six
    assert "remaining_days (30) decides" in ninety, ninety
    assert count_orders(lab.pebble_log()) == before


def test_a_window_moved_into_the_past_renews_with_replaces(
        lab: Lab, info: LabInfo, cert_dir: Path, tmp_path: Path) -> None:
    args = {"name": "ari", "domains": ["ari.window.example"], "profile": "default"}
    assert _order(info, cert_dir, tmp_path, **args)["action"] == "issued"
    old = _leaf(cert_dir / "ari.pem")
    assert _order(info, cert_dir, tmp_path, **args)["action"] == "unchanged"
    now = dt.datetime.now(dt.timezone.utc)
    lab.set_renewal_info((cert_dir / "ari.pem").read_text(), now - dt.timedelta(hours=2), now - dt.timedelta(hours=1),
                         "https://ca.example/incident")
    before = count_orders(lab.pebble_log())
    result = _order(info, cert_dir, tmp_path, **args)  # a plain run: no force
    assert result["action"] == "renewed", result
    assert "the CA's renewal window (ARI) opened at" in result["reason"]
    assert "see https://ca.example/incident" in result["reason"]
    assert count_orders(lab.pebble_log()) == before + 1
    assert _leaf(cert_dir / "ari.pem").serial_number != old.serial_number
    if "serverInternal" in result["reason"]:
        # pebble misses certificates whose serial has its top bit set: the order went
        # through without replaces (docs/lifetimes.md). Nothing else may drop it.
        assert old.serial_number.to_bytes(20, "big").lstrip(b"\0")[0] & 0x80, result["reason"]
    else:
        assert result["replaces"] == cert_id(old), result  # as pebble's order object names it
    again = _order(info, cert_dir, tmp_path, **args)
    assert again["action"] == "unchanged", again


def test_a_certificate_of_another_account_renews_under_the_new_one(
        lab: Lab, info: LabInfo, cert_dir: Path, tmp_path: Path) -> None:
    """After a move to a new account key (e.g. from acme.sh), ``replaces`` names a certificate
    the new account did not order: the CA refuses it, and the order goes through without it."""
    args = {"name": "moved", "domains": ["moved.account.example"], "profile": "shortlived"}
    assert _order(info, cert_dir, tmp_path, **args)["action"] == "issued"
    old = _leaf(cert_dir / "moved.pem")
    now = dt.datetime.now(dt.timezone.utc)
    lab.set_renewal_info((cert_dir / "moved.pem").read_text(), now - dt.timedelta(hours=2), now - dt.timedelta(hours=1))
    new_key, thumbprint = _new_account_key(tmp_path)
    old_thumbprint = info.lab_thumbprint
    lab.start_haproxy(thumbprint)  # the new account's answer (lab set-up, not a certificate deploy)
    try:
        result = _order(info, cert_dir, tmp_path, account_key_path=str(new_key), **args)
        assert result["action"] == "renewed", result.get("msg", result)
        assert "ordered without replaces, which the CA refused (" in result["reason"], result["reason"]
        assert "unauthorized" in result["reason"] or "serverInternal" in result["reason"], result["reason"]
        assert result["replaces"] is None
        assert _leaf(cert_dir / "moved.pem").serial_number != old.serial_number
        # The next runs, under the new account, find nothing to do.
        assert _order(info, cert_dir, tmp_path, account_key_path=str(new_key), **args)["action"] == "unchanged"
    finally:
        lab.start_haproxy(old_thumbprint)


def test_a_change_of_profile_renews_once(lab: Lab, info: LabInfo, cert_dir: Path, tmp_path: Path) -> None:
    args = {"name": "switch", "domains": ["switch.profiles.example"]}
    assert _order(info, cert_dir, tmp_path, profile="default", **args)["action"] == "issued"
    switched = _order(info, cert_dir, tmp_path, profile="shortlived", **args)
    assert switched["action"] == "renewed", switched
    assert "the profile differs (the certificate was ordered with 'default', 'shortlived' is asked)" in switched["reason"]
    assert _lifetime_days(_leaf(cert_dir / "switch.pem")) < 7
    assert _order(info, cert_dir, tmp_path, profile="shortlived", **args)["action"] == "unchanged"
