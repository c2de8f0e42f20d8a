# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ACME modules against the real lab, for what is awkward in YAML.

Each module runs as Ansible runs it on a host: a separate Python process reading its
arguments from a JSON file. Validation is real: pebble asks the lab's HAProxy.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._index import INDEX_NAME
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._lock import LOCK_NAME
from tests.lab.lab import Lab, LabInfo, count_orders, free_port

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "ansible_collections.tlsops.haproxy_acme.plugins.modules"


def run_module(module: str, args: dict[str, t.Any], tmp_path: Path, check_mode: bool = False) -> dict[str, t.Any]:
    """Run a module in its own process, as on a managed host; its JSON result."""
    args_file = tmp_path / f"args-{time.monotonic_ns()}.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check_mode}}))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "build" / "collections")}
    proc = subprocess.run([sys.executable, "-m", f"{PACKAGE}.{module}", str(args_file)],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    result = t.cast(dict[str, t.Any], json.loads(proc.stdout))
    assert (proc.returncode != 0) == bool(result.get("failed")), proc.stdout
    return result


def acme_args(info: LabInfo, cert_dir: Path, **extra: t.Any) -> dict[str, t.Any]:
    return {"directory": info.acme_directory, "ca_path": info.acme_ca_path,
            "account_key_path": info.lab_account_key_path, "terms_agreed": True, "cert_dir": str(cert_dir), **extra}


def verify_chain(info: LabInfo, pem: Path) -> None:
    subprocess.run(["openssl", "verify", "-CAfile", info.pebble_root_path, "-untrusted", str(pem), str(pem)],
                   check=True, capture_output=True)


def no_temp_files(cert_dir: Path) -> bool:
    return not [p for p in cert_dir.iterdir() if p.name.startswith(".") and p.name not in (LOCK_NAME, INDEX_NAME)]


@pytest.fixture
def cert_dir(tmp_path: Path) -> Path:
    path = tmp_path / "certs"
    path.mkdir()
    return path


# ------------------------------------------------------------------ 50 names, bad nonces


@pytest.mark.slow
def test_fifty_names_concurrency_8_with_30_percent_bad_nonces(
    make_lab: t.Callable[..., Lab], cert_dir: Path, tmp_path: Path
) -> None:
    lab = make_lab(nonce_reject=30)
    assert lab.info is not None
    certificates = [{"name": f"n{i:02d}", "domains": [f"n{i:02d}.example.net"]} for i in range(50)]
    result = run_module("acme_stateless_order", acme_args(lab.info, cert_dir, concurrency=8,
                                                          certificates=certificates), tmp_path)
    assert not result.get("failed"), result.get("msg")
    assert [c["action"] for c in result["certificates"]] == ["issued"] * 50
    for entry in result["certificates"][::7]:
        verify_chain(lab.info, Path(entry["path"]))
    assert count_orders(lab.pebble_log()) >= 50
    orders = count_orders(lab.pebble_log())

    again = run_module("acme_stateless_order", acme_args(lab.info, cert_dir, concurrency=8, use_ari=False,
                                                         certificates=certificates), tmp_path)
    assert not again["changed"] and again["ca_requests"] == 0
    assert {c["action"] for c in again["certificates"]} == {"unchanged"}
    assert count_orders(lab.pebble_log()) == orders


# ------------------------------------------------------------------ bad input, clear errors, nothing lost


@pytest.fixture
def existing(lab: LabInfo, cert_dir: Path, tmp_path: Path) -> bytes:
    """A valid certificate 'keep' that failures must leave as it is."""
    result = run_module("acme_stateless_order", acme_args(lab, cert_dir, name="keep", domains=["keep.example.net"]),
                        tmp_path)
    assert result["action"] == "issued", result
    return (cert_dir / "keep.pem").read_bytes()


def test_unknown_alias(lab: LabInfo, cert_dir: Path, tmp_path: Path) -> None:
    result = run_module("acme_stateless_order", {**acme_args(lab, cert_dir, domains=["a.example.net"]),
                                                 "directory": "letsencrypt_staging"}, tmp_path)
    assert result["failed"]
    assert result["msg"].startswith("unknown ACME directory 'letsencrypt_staging': use one of buypass, ")


def test_plain_http_directory_is_refused_before_any_request(lab: LabInfo, cert_dir: Path, tmp_path: Path) -> None:
    plain = "http://" + lab.acme_directory.split("://", 1)[1]
    before = count_orders(Path(lab.dir, "pebble.log").read_text(errors="replace"))
    order = {**acme_args(lab, cert_dir, domains=["a.example.net"]), "directory": plain}
    account = {k: v for k, v in order.items() if k not in ("cert_dir", "domains")}
    for module, args in (("acme_account", account), ("acme_stateless_order", order)):
        result = run_module(module, args, tmp_path)
        assert result["failed"]
        assert result["msg"] == (f"ACME directory {plain!r} is plain http://: RFC 8555 section 6.1 requires HTTPS; "
                                 "give the CA's https:// directory URL"), result["msg"]
    assert count_orders(Path(lab.dir, "pebble.log").read_text(errors="replace")) == before


def test_ca_unreachable(lab: LabInfo, cert_dir: Path, tmp_path: Path, existing: bytes) -> None:
    port = free_port()  # nothing listens there
    # request_timeout 3: every request, and the whole batch, gives up after 6 s (twice that)
    args = {**acme_args(lab, cert_dir), "directory": f"https://127.0.0.1:{port}/dir", "force": True,
            "request_timeout": 3, "certificates": [{"name": "keep", "domains": ["keep.example.net"]},
                                                   {"name": "new", "domains": ["new.example.net"]}]}
    started = time.monotonic()
    result = run_module("acme_stateless_order", args, tmp_path)
    assert time.monotonic() - started < 30
    assert result["failed"]
    for entry in result["certificates"]:
        assert entry["action"] == "failed"
        assert re.fullmatch(rf"certificate '{entry['name']}' \({entry['domains'][0]}\): the ACME server "
                            rf"https://127\.0\.0\.1:{port}/dir is unreachable since [0-9T:-]+Z: connection refused",
                            entry["msg"]), entry["msg"]
    assert (cert_dir / "keep.pem").read_bytes() == existing
    assert not (cert_dir / "new.pem").exists() and no_temp_files(cert_dir)
    # the same outage does not fail a run with nothing due, even with ARI asked for
    calm = run_module("acme_stateless_order", {**args, "force": False, "certificates": args["certificates"][:1]},
                      tmp_path)
    assert not calm.get("failed") and calm["certificates"][0]["action"] == "unchanged"


def test_validation_fails_with_the_ca_error(make_lab: t.Callable[..., Lab], cert_dir: Path, tmp_path: Path) -> None:
    lab = make_lab()
    assert lab.info is not None
    info = lab.info
    first = run_module("acme_stateless_order", acme_args(info, cert_dir, name="keep", domains=["keep.example.net"]),
                       tmp_path)
    before = (cert_dir / "keep.pem").read_bytes()
    lab.start_haproxy(thumbprint="not-the-account-thumbprint-at-all-xxxxxxxxxx")
    result = run_module("acme_stateless_order", acme_args(info, cert_dir, force=True, certificates=[
        {"name": "keep", "domains": ["keep.example.net", "www.keep.example.net"]}]), tmp_path)
    entry = result["certificates"][0]
    assert result["failed"] and entry["action"] == "failed"
    assert entry["msg"].startswith("certificate 'keep' (keep.example.net, www.keep.example.net): validation of ")
    assert "failed: unauthorized: " in entry["msg"]
    assert "not-the-account-thumbprint" in entry["msg"]  # pebble quotes what HAProxy answered
    assert (cert_dir / "keep.pem").read_bytes() == before and entry["serial"] == first["serial"]
    assert no_temp_files(cert_dir)


def test_name_pointed_elsewhere(make_lab: t.Callable[..., Lab], cert_dir: Path, tmp_path: Path) -> None:
    lab = make_lab()
    assert lab.info is not None
    lab.point_dns("elsewhere.example.net", "127.0.0.2")  # nothing listens there on HAProxy's port
    result = run_module("acme_stateless_order", acme_args(lab.info, cert_dir, certificates=[
        {"name": "ok", "domains": ["ok.example.net"]},
        {"name": "away", "domains": ["here.example.net", "elsewhere.example.net"]}]), tmp_path)
    assert [c["action"] for c in result["certificates"]] == ["issued", "failed"]
    assert "certificate 'away' (here.example.net, elsewhere.example.net): validation of elsewhere.example.net " \
           "failed: connection: " in result["msg"]
    assert not (cert_dir / "away.pem").exists() and no_temp_files(cert_dir)


def test_bad_nonce_exhausted(make_lab: t.Callable[..., Lab], cert_dir: Path, tmp_path: Path) -> None:
    lab = make_lab(nonce_reject=100)
    assert lab.info is not None
    result = run_module("acme_stateless_order", acme_args(lab.info, cert_dir, domains=["n.example.net"],
                                                          request_timeout=2), tmp_path)
    assert result["failed"] and result["action"] == "failed"
    assert result["msg"].startswith("certificate 'n.example.net' (n.example.net): ACME server error badNonce: ")
    assert re.search(r"\(gave up after \d+ rejected nonces in 4 s\)$", result["msg"]), result["msg"]


@pytest.mark.parametrize(("domain", "why"), [
    ("", "empty"), ("bad name.example", "whitespace"), ("*.example.net", "wildcards"), ("fe80::1%eth0", "zone-scoped address"),
    ("192.0.2.07", "not a valid IP address"),
    ("a" * 64 + ".example", "longer than 63"), (".".join(["abcdefghi"] * 26), "longer than 253"),
    ("-x.example", "inner hyphens"),
])
def test_invalid_names(lab: LabInfo, cert_dir: Path, tmp_path: Path, existing: bytes, domain: str, why: str) -> None:
    result = run_module("acme_stateless_order", acme_args(lab, cert_dir, certificates=[
        {"name": "keep", "domains": ["keep.example.net", domain]}]), tmp_path)
    entry = result["certificates"][0]
    assert result["failed"] and entry["action"] == "failed"
    assert entry["msg"].startswith(f"certificate 'keep' (keep.example.net, {domain}): invalid domain {domain!r}: ")
    assert why in entry["msg"]
    assert (cert_dir / "keep.pem").read_bytes() == existing


def test_case_and_trailing_dot_are_normalised(lab: LabInfo, cert_dir: Path, tmp_path: Path, existing: bytes) -> None:
    result = run_module("acme_stateless_order", acme_args(lab, cert_dir, name="keep", domains=["KEEP.Example.NET."]),
                        tmp_path)
    assert result["action"] == "unchanged" and result["domains"] == ["keep.example.net"]


def _write_key(path: Path, key: t.Any) -> None:
    path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))


@pytest.mark.parametrize(("setup", "message"), [
    (lambda p: p.mkdir(), "account key {p} is a directory"),
    (lambda p: p.write_text("junk"), "account key {p}: no PEM private key found"),
    (lambda p: _write_key(p, ed25519.Ed25519PrivateKey.generate()), "account key {p}: only EC (P-256, P-384) and RSA"),
    (lambda p: _write_key(p, rsa.generate_private_key(65537, 1024)), "account key {p}: RSA key of 1024 bits is too small"),
    (lambda p: None, "account key {p} does not exist: create it with tlsops.haproxy_acme.acme_account"),
])
def test_bad_account_key(lab: LabInfo, cert_dir: Path, tmp_path: Path, existing: bytes,
                         setup: t.Callable[[Path], object], message: str) -> None:
    key = tmp_path / "bad.key"
    setup(key)
    args = {**acme_args(lab, cert_dir, force=True, name="keep", domains=["keep.example.net"]),
            "account_key_path": str(key)}
    result = run_module("acme_stateless_order", args, tmp_path)
    assert result["failed"]
    expected = message.format(p=key)
    assert result["msg"].startswith(f"certificate 'keep' (keep.example.net): {expected}"), result["msg"]
    assert (cert_dir / "keep.pem").read_bytes() == existing


@pytest.mark.parametrize("make_dir", [
    pytest.param(lambda d: d / "missing", id="missing"),
    pytest.param(lambda d: (d / "file").write_text("x") and d / "file", id="a-file"),
])
def test_unusable_cert_dir(lab: LabInfo, tmp_path: Path, make_dir: t.Callable[[Path], Path]) -> None:
    target = make_dir(tmp_path)
    before = count_orders(Path(lab.dir, "pebble.log").read_text(errors="replace"))
    result = run_module("acme_stateless_order", acme_args(lab, target, domains=["d.example.net"]), tmp_path)
    assert result["failed"]
    assert result["msg"] == f"certificate 'd.example.net' (d.example.net): cert_dir {target} does not exist or is not a directory"
    assert count_orders(Path(lab.dir, "pebble.log").read_text(errors="replace")) == before  # no order placed
