# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Incident response against the real lab: a leaked account key rolled over, leaked
certificates revoked, and HAProxy never reloaded.

The lab's HAProxy answers challenges from a map here (the haproxy role's challenge
rule), not from setenv: ``MapLab`` renders the lab's configuration with that rule. The
new thumbprint reaches HAProxy over the Runtime API, and pebble then validates an order
of the rolled-over account for real against the same HAProxy process. Revocations are
read back from pebble's management API (``/cert-status-by-serial/``).

On the host these run with HAProxy 2.6; the trixie_lab stage runs them in a Debian 13
node, with HAProxy 3.0.
"""

from __future__ import annotations

import json
import ssl
import typing as t
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.integration.haproxy_runtime_helpers import haproxy_pid, raw_cli
from tests.integration.test_acme_modules import acme_args, run_module, verify_chain
from tests.lab.lab import HAPROXY_CFG, Lab, LabInfo

SETENV = "    setenv ACCOUNT_THUMBPRINT '{thumbprint}'\n"
SETENV_ANSWER = '"%[path,field(-1,/)].${{ACCOUNT_THUMBPRINT}}\\n" if acme_token'
MAP_ANSWER = ('"%[path,field(-1,/)].%[str(thumbprint),map({map})]\\n" if acme_token'
              " {{{{ str(thumbprint),map({map}) -m found }}}}")
TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"


def map_config(template: str, map_path: str) -> str:
    """The lab's configuration with the haproxy role's challenge rule: the thumbprint from a map."""
    assert SETENV in template and SETENV_ANSWER in template, "the lab's challenge rule changed"
    return template.replace(SETENV, "").replace(SETENV_ANSWER, MAP_ANSWER.format(map=map_path))


class MapLab(Lab):
    """The lab, its HAProxy answering challenges from ``<dir>/maps/acme-thumbprint.map``."""

    @property
    def map_path(self) -> Path:
        return self.dir / "maps" / "acme-thumbprint.map"

    def haproxy_config(self, thumbprint: str | None = None) -> str:
        assert self.info is not None
        self.map_path.parent.mkdir(exist_ok=True)
        if not self.map_path.exists():  # what the role writes before HAProxy's first start
            self.map_path.write_text(f"thumbprint {thumbprint or self.info.lab_thumbprint}\n")
        return map_config(HAPROXY_CFG, str(self.map_path)).format(
            socket=self.info.lab_socket, pidfile=self.info.lab_haproxy_pid_file, bind=self.listen,
            http_port=self.info.lab_http_port, https_port=self.info.lab_https_port, cert_dir=self.info.lab_cert_dir)


@pytest.fixture(scope="module")
def map_lab(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[MapLab]:
    lab = MapLab(tmp_path_factory.mktemp("maplab"))
    lab.start()
    yield lab
    lab.stop()


def challenge_answer(info: LabInfo, token: str = TOKEN) -> tuple[int, str]:
    url = f"http://127.0.0.1:{info.lab_http_port}/.well-known/acme-challenge/{token}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def serve_thumbprint(lab: MapLab, thumbprint: str, tmp_path: Path, **extra: t.Any) -> dict[str, t.Any]:
    assert lab.info is not None
    result = run_module("haproxy_acme_thumbprint", {"thumbprint": thumbprint, "path": str(lab.map_path),
                                                    "socket": [lab.info.lab_socket], **extra}, tmp_path)
    assert not result.get("failed"), result
    return result


def pebble_status(info: LabInfo, serial_hex: str) -> dict[str, t.Any]:
    """What pebble's management API says of a certificate: Status Valid or Revoked, Reason."""
    ctx = ssl.create_default_context(cafile=info.acme_ca_path)
    url = f"{info.pebble_management}/cert-status-by-serial/{serial_hex.lower().lstrip('0')}"
    with urllib.request.urlopen(url, context=ctx, timeout=10) as response:
        return t.cast(dict[str, t.Any], json.load(response))


def new_account(info: LabInfo, tmp_path: Path, name: str) -> dict[str, t.Any]:
    """A fresh account key (written by acme_account) and its account."""
    result = run_module("acme_account", {"directory": info.acme_directory, "ca_path": info.acme_ca_path,
                                         "account_key_path": str(tmp_path / f"{name}.key"), "terms_agreed": True},
                        tmp_path)
    assert result["key_created"] and result["status"] == "valid", result
    return result


# ------------------------------------------------------------------ the challenge rule


def test_the_map_rule_answers_well_formed_tokens_only(map_lab: MapLab, tmp_path: Path) -> None:
    info = map_lab.info
    assert info is not None
    serve_thumbprint(map_lab, info.lab_thumbprint, tmp_path)
    assert challenge_answer(info) == (200, f"{TOKEN}.{info.lab_thumbprint}\n")
    for bad in ("a.b", "", "..%2f..%2fetc%2fpasswd", f"{TOKEN}%0a", f"{TOKEN}/x"):
        status, body = challenge_answer(info, bad)
        assert status == 404 and info.lab_thumbprint not in body, (bad, status, body)
    cfg = Path(info.lab_haproxy_cfg).read_text()
    assert "setenv" not in cfg and f"map({map_lab.map_path})" in cfg


# ------------------------------------------------------------------ account key rollover


def test_rollover_then_the_new_key_orders_with_haproxy_never_reloaded(map_lab: MapLab, tmp_path: Path) -> None:
    info = map_lab.info
    assert info is not None
    account = new_account(info, tmp_path, "leaked")
    old_key, new_key = tmp_path / "leaked.key", tmp_path / "leaked.key.next"
    serve_thumbprint(map_lab, account["thumbprint"], tmp_path)
    pid = haproxy_pid(info.lab_socket)
    base = {"directory": info.acme_directory, "ca_path": info.acme_ca_path, "account_key_path": str(old_key),
            "new_account_key_path": str(new_key)}

    check = run_module("acme_account", base, tmp_path, check_mode=True)
    assert check["changed"] and check["rolled_over"] and check["new_thumbprint"] is None and not new_key.exists()

    rolled = run_module("acme_account", base, tmp_path)
    assert rolled["changed"] and rolled["rolled_over"] and rolled["new_key_created"], rolled
    assert rolled["account_uri"] == account["account_uri"] and rolled["old_thumbprint"] == account["thumbprint"]
    new_tp = rolled["new_thumbprint"]
    assert new_tp == rolled["thumbprint"] != account["thumbprint"]

    # The old key no longer finds the account; the new key does, at the same URL.
    old_only = run_module("acme_account", {k: v for k, v in base.items() if k != "new_account_key_path"}, tmp_path,
                          check_mode=True)
    assert old_only["account_uri"] is None and old_only["changed"]  # would create a new account
    new_only = run_module("acme_account", {**base, "account_key_path": str(new_key), "new_account_key_path": None},
                          tmp_path)
    assert not new_only["changed"] and new_only["account_uri"] == account["account_uri"]

    # HAProxy answers with the new thumbprint: over the Runtime API, the same process.
    pushed = serve_thumbprint(map_lab, new_tp, tmp_path, _ansible_diff=True)
    assert pushed["changed"] and pushed["previous_thumbprint"] == account["thumbprint"]
    assert pushed["sockets"][0]["action"] == "updated"
    assert challenge_answer(info) == (200, f"{TOKEN}.{new_tp}\n")
    assert map_lab.map_path.read_text().splitlines()[-1] == f"thumbprint {new_tp}"
    (listing,) = raw_cli(info.lab_socket, f"show map {map_lab.map_path}")
    assert listing.split()[1:] == ["thumbprint", new_tp]

    # pebble validates an order of the rolled-over account against that same HAProxy.
    certs = tmp_path / "certs"
    certs.mkdir()
    order = run_module("acme_stateless_order", acme_args(info, certs, account_key_path=str(new_key),
                                                         terms_agreed=False, name="after-rollover",
                                                         domains=["after-rollover.example.net"]), tmp_path)
    assert order["action"] == "issued", order
    verify_chain(info, certs / "after-rollover.pem")

    # Everything again: nothing to do, nothing sent but look-ups.
    again = run_module("acme_account", base, tmp_path)
    assert not again["changed"] and not again["rolled_over"] and again["thumbprint"] == new_tp
    assert not serve_thumbprint(map_lab, new_tp, tmp_path)["changed"]
    assert haproxy_pid(info.lab_socket) == pid == map_lab.haproxy_pid()


def test_rollover_to_a_key_of_another_account_is_refused(map_lab: MapLab, tmp_path: Path) -> None:
    info = map_lab.info
    assert info is not None
    new_account(info, tmp_path, "one")
    new_account(info, tmp_path, "two")
    result = run_module("acme_account", {"directory": info.acme_directory, "ca_path": info.acme_ca_path,
                                         "account_key_path": str(tmp_path / "one.key"),
                                         "new_account_key_path": str(tmp_path / "two.key")}, tmp_path)
    assert result["failed"] and "already belongs to another account" in result["msg"]
    assert "409 Conflict" in result["msg"]


# ------------------------------------------------------------------ revocation


def test_revoke_by_account_key_and_by_certificate_key(map_lab: MapLab, tmp_path: Path) -> None:
    info = map_lab.info
    assert info is not None
    account = new_account(info, tmp_path, "revoker")
    key = str(tmp_path / "revoker.key")
    serve_thumbprint(map_lab, account["thumbprint"], tmp_path)
    certs = tmp_path / "certs"
    certs.mkdir()
    issued = run_module("acme_stateless_order", acme_args(info, certs, account_key_path=key, certificates=[
        {"name": "superseded", "domains": ["superseded.example.net"]},
        {"name": "leaked", "domains": ["leaked.example.net"]},
        {"name": "kept", "domains": ["kept.example.net"]}]), tmp_path)
    assert [c["action"] for c in issued["certificates"]] == ["issued"] * 3, issued
    serials = {c["name"]: c["serial"] for c in issued["certificates"]}
    assert all(pebble_status(info, serial)["Status"] == "Valid" for serial in serials.values())
    acme = {"directory": info.acme_directory, "ca_path": info.acme_ca_path}

    # Check mode and a reason that is none: nothing reaches pebble.
    check = run_module("acme_revoke", {**acme, "account_key_path": key, "reason": "superseded",
                                       "certificate_path": str(certs / "superseded.pem")}, tmp_path, check_mode=True)
    assert check["changed"] and check["ca_requests"] == 0
    bad = run_module("acme_revoke", {**acme, "account_key_path": key, "reason": 7,
                                     "certificate_path": str(certs / "superseded.pem")}, tmp_path)
    assert bad["failed"] and bad["msg"].startswith("reason 7 is no RFC 5280 revocation reason")
    assert pebble_status(info, serials["superseded"])["Status"] == "Valid"

    # By the account that holds it.
    by_account = {**acme, "account_key_path": key, "reason": "superseded",
                  "certificate_path": str(certs / "superseded.pem")}
    done = run_module("acme_revoke", by_account, tmp_path)
    assert done["changed"] and done["account_uri"] == account["account_uri"] and done["reason_code"] == 4
    status = pebble_status(info, serials["superseded"])
    assert (status["Status"], status["Reason"]) == ("Revoked", 4)
    again = run_module("acme_revoke", by_account, tmp_path)
    assert not again["changed"] and again["already_revoked"]

    # By the certificate's own key (the bundle holds it), as for keyCompromise: no account key given.
    by_key = {**acme, "revoke_with": "certificate_key", "reason": "keyCompromise",
              "certificate_content": (certs / "leaked.pem").read_text()}
    done = run_module("acme_revoke", by_key, tmp_path)
    assert done["changed"] and done["revoked_with"] == "certificate_key" and done["account_uri"] is None
    status = pebble_status(info, serials["leaked"])
    assert (status["Status"], status["Reason"]) == ("Revoked", 1)
    assert not run_module("acme_revoke", by_key, tmp_path)["changed"]

    # Another account may not revoke it; the certificate's own key may.
    stranger = new_account(info, tmp_path, "stranger")
    refused = run_module("acme_revoke", {**acme, "account_key_path": str(tmp_path / "stranger.key"),
                                         "certificate_path": str(certs / "kept.pem")}, tmp_path)
    assert refused["failed"] and "unauthorized" in refused["msg"]
    assert refused["msg"].endswith("revoke with the certificate's own key (revoke_with: certificate_key)")
    assert stranger["account_uri"] != account["account_uri"]
    assert pebble_status(info, serials["kept"])["Status"] == "Valid"
