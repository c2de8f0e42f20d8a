# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's pebble knobs on whichever pebble build runs (``TLSOPS_LAB_PEBBLE``).

The other ACME tests rely on them: the build recorded matches what its directory
offers, ``validity_seconds`` holds on every build, ``profiles`` where there are
profiles, and ``set_renewal_info`` where pebble takes ARI overrides.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import ssl
import typing as t
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509

from tests.integration.test_acme_modules import acme_args, run_module
from tests.lab.lab import PEBBLE_ENV, Lab, LabInfo, find_pebble, parse_version


def _issue(info: LabInfo, tmp_path: Path, name: str) -> tuple[str, x509.Certificate]:
    cert_dir = tmp_path / "certs"
    cert_dir.mkdir(exist_ok=True)
    result = run_module("acme_stateless_order",
                        acme_args(info, cert_dir, name=name, domains=[f"{name}.example.net"], use_ari=False), tmp_path)
    entry = (result.get("certificates") or [{}])[0]
    log = Path(info.dir, "pebble.log")
    tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
    assert result["action"] == "issued", (entry.get("reason"), result.get("msg"), tail)
    pem = (cert_dir / f"{name}.pem").read_text()
    return pem, x509.load_pem_x509_certificate(pem[pem.index("-----BEGIN CERTIFICATE-----"):].encode())


def _lifetime(cert: x509.Certificate) -> int:
    return int((cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds()) + 1


def test_the_build_is_the_one_asked_and_its_directory_agrees(lab: LabInfo) -> None:
    asked = os.environ.get(PEBBLE_ENV, "")
    if asked and asked[0].isdigit():
        want = parse_version(asked)
        assert lab.pebble_version[: len(want)] == want
    assert lab.pebble_version > (2,), lab.pebble_release
    assert Path(lab.pebble_bin).parent == Path(lab.challtestsrv_bin).parent
    assert lab.supports_ari == (lab.pebble_version >= (2, 6))
    assert lab.supports_profiles == (lab.pebble_version >= (2, 7))
    extra = lab.extra_vars()
    assert extra["pebble_version"] == ".".join(map(str, lab.pebble_version))
    assert extra["acme_ari"] is lab.supports_ari
    json.dumps(extra)


def test_validity_seconds_on_every_build(make_lab: t.Callable[..., Lab], tmp_path: Path) -> None:
    lab = make_lab(validity_seconds=3 * 86400)
    assert lab.info is not None
    _, cert = _issue(lab.info, tmp_path, "short")
    assert _lifetime(cert) == 3 * 86400


def test_profiles_set_validity(make_lab: t.Callable[..., Lab], tmp_path: Path) -> None:
    if find_pebble().version < (2, 7):
        pytest.skip("pebble before 2.7 has no profiles")
    lab = make_lab(profiles={"default": 0, "shortlived": 518400}, validity_seconds=5 * 86400)
    assert lab.info is not None
    assert set(lab.info.acme_profiles) == {"default", "shortlived"}
    lone = make_lab(profiles={"shortlived": 2 * 86400})
    assert lone.info is not None
    assert list(lone.info.acme_profiles) == ["shortlived"]
    _, cert = _issue(lone.info, tmp_path, "lone")  # an order naming no profile gets the only one
    assert _lifetime(cert) == 2 * 86400


def test_profiles_refused_without_profiles(make_lab: t.Callable[..., Lab]) -> None:
    if find_pebble().version >= (2, 7):
        pytest.skip("this pebble has profiles")
    with pytest.raises(RuntimeError, match=r"profiles need pebble 2\.7"):
        make_lab(profiles={"default": 86400})


def _cert_id(cert: x509.Certificate) -> str:
    """RFC 9773 section 4.1: base64url(AKI keyIdentifier) "." base64url(serial DER bytes)."""
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki is not None
    serial = cert.serial_number.to_bytes((cert.serial_number.bit_length() + 8) // 8, "big")

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return f"{b64(aki)}.{b64(serial)}"


def test_set_renewal_info(make_lab: t.Callable[..., Lab], tmp_path: Path) -> None:
    lab = make_lab()
    assert lab.info is not None
    info = lab.info
    if not info.supports_set_renewal_info:
        with pytest.raises(RuntimeError, match="set-renewal-info"):
            lab.set_renewal_info("", dt.datetime.now(), dt.datetime.now())
        return
    pem, cert = _issue(info, tmp_path, "ari")
    ctx = ssl.create_default_context(cafile=info.acme_ca_path)
    with urllib.request.urlopen(info.acme_directory, context=ctx, timeout=10) as resp:
        url = f"{json.load(resp)['renewalInfo']}/{_cert_id(cert)}"
    start = dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    lab.set_renewal_info(pem, start, start + dt.timedelta(hours=1), explanation_url="https://example.net/why")
    with urllib.request.urlopen(url, context=ctx, timeout=10) as resp:
        answer = json.load(resp)
    assert answer == {"suggestedWindow": {"start": "2020-01-02T03:04:05Z", "end": "2020-01-02T04:04:05Z"},
                      "explanationURL": "https://example.net/why"}
