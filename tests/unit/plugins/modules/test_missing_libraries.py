# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every module on a host without cryptography, without requests, or without both.

Each module runs as on a managed host: its own Python process reading its arguments
from a JSON file. The interpreter is this one started with ``-S`` (no site-packages
at all, neither the venv's nor the distribution's), and PYTHONPATH is a directory of
links to exactly what may be there: Ansible's own package, the collection, and the
library a case keeps, with what importing it pulls in. The fake stats socket runs in
this process.

A missing library must give Ansible's missing_required_lib message, never a traceback;
haproxy_runtime_cert_info and a removal with haproxy_runtime_cert need neither library.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import ansible
import pytest

from tests.unit.plugins.module_utils._haproxy.fake_haproxy import FakeHaproxy
from tests.unit.plugins.module_utils._haproxy.testcerts import bundle

ROOT = Path(__file__).resolve().parents[4]
COLLECTIONS = ROOT / "build" / "collections" / "ansible_collections"
PACKAGE = "ansible_collections.tlsops.haproxy_acme.plugins.modules"
# What importing a library loads from outside the standard library, top-level names first.
_CLOSURE = r"""
import importlib, json, os, sys, sysconfig
stdlib = {os.path.realpath(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib")}
for name in sys.argv[1:]:
    importlib.import_module(name)
found = {}
for module in list(sys.modules.values()):
    path = getattr(module, "__file__", None)
    if not path or module.__name__ in ("__main__", "sitecustomize", "_distutils_hack"):
        continue
    real = os.path.realpath(path)
    if any(real.startswith(d + os.sep) for d in stdlib) and "-packages" not in real:
        continue
    top = module.__name__.split(".")[0]
    if "." not in module.__name__:
        found[top] = os.path.dirname(path) if path.endswith("__init__.py") else path
print(json.dumps(found))
"""
CRYPTOGRAPHY = ["cryptography.x509", "cryptography.hazmat.primitives.asymmetric.ec",
                "cryptography.hazmat.primitives.asymmetric.rsa", "cryptography.hazmat.primitives.serialization"]


def isolated_path(tmp_path: Path, keep: list[str]) -> Path:
    """A PYTHONPATH directory holding only Ansible, the collection and ``keep`` with what they import."""
    where = tmp_path / "pythonpath"
    where.mkdir()
    (where / "ansible").symlink_to(Path(ansible.__file__).parent)
    (where / "ansible_collections").symlink_to(COLLECTIONS)
    if keep:
        out = subprocess.run([sys.executable, "-c", _CLOSURE, *keep], capture_output=True, text=True,
                             check=True, timeout=60).stdout
        for name, path in json.loads(out).items():
            if name not in ("ansible", "ansible_collections", "tests"):
                (where / os.path.basename(path)).symlink_to(path)
    return where


def run_module(module: str, args: dict[str, t.Any], pythonpath: Path, tmp_path: Path) -> dict[str, t.Any]:
    args_file = tmp_path / f"args-{time.monotonic_ns()}.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(pythonpath)
    proc = subprocess.run([sys.executable, "-S", "-m", f"{PACKAGE}.{module}", str(args_file)],
                          capture_output=True, text=True, env=env, timeout=60, check=False, cwd=tmp_path)
    assert "Traceback" not in proc.stderr and "NameError" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    result = t.cast(dict[str, t.Any], json.loads(proc.stdout))
    assert (proc.returncode != 0) == bool(result.get("failed")), proc.stdout
    return result


def missing(result: dict[str, t.Any], libraries: str) -> bool:
    return bool(result.get("failed")) and result["msg"].startswith(
        f"Failed to import the required Python library ({libraries}) on "
    )


@pytest.fixture
def setup(tmp_path: Path) -> t.Iterator[tuple[FakeHaproxy, Path, dict[str, dict[str, t.Any]]]]:
    certdir = tmp_path / "certs"
    certdir.mkdir()
    bundle_file = tmp_path / "a.test.pem"
    bundle_file.write_bytes(bundle(["a.test"]))
    (tmp_path / "fake").mkdir()
    with FakeHaproxy(tmp_path / "fake", crt_dir=str(certdir)) as fake:
        acme = {"directory": "https://127.0.0.1:9/dir", "account_key_path": str(tmp_path / "account.key"),
                "terms_agreed": True}
        args = {
            "acme_account": acme,
            "acme_stateless_order": {**acme, "cert_dir": str(certdir), "domains": ["a.test"]},
            "haproxy_runtime_cert": {"socket": fake.socket, "path": str(certdir / "a.test.pem"),
                                     "pem_src": str(bundle_file), "timeout": 5},
            "haproxy_runtime_cert_info": {"socket": fake.socket, "timeout": 5},
        }
        yield fake, certdir, args


def test_without_cryptography_and_requests(
    setup: tuple[FakeHaproxy, Path, dict[str, dict[str, t.Any]]], tmp_path: Path
) -> None:
    fake, certdir, args = setup
    where = isolated_path(tmp_path, [])
    for module in ("acme_account", "acme_stateless_order"):
        assert missing(run_module(module, args[module], where, tmp_path), "cryptography and requests"), module
    result = run_module("haproxy_runtime_cert", args["haproxy_runtime_cert"], where, tmp_path)
    assert missing(result, "cryptography"), result
    assert "to check each PEM bundle before it is written or sent" in result["msg"]
    assert not (certdir / "a.test.pem").exists()
    assert [line for line in fake.state.log if not line.startswith("show")] == []
    # what needs no parsing of certificates works
    fake.add(str(certdir / "b.test.pem"), bundle(["b.test"]), crt_list=str(certdir))
    shown = run_module("haproxy_runtime_cert_info", args["haproxy_runtime_cert_info"], where, tmp_path)
    assert not shown.get("failed"), shown
    assert [c["path"] for c in shown["certificates"]] == [str(certdir / "b.test.pem")]
    removed = run_module("haproxy_runtime_cert", {"socket": fake.socket, "path": str(certdir / "b.test.pem"),
                                                  "state": "absent"}, where, tmp_path)
    assert not removed.get("failed") and removed["action"] == "removed", removed


def test_without_cryptography(setup: tuple[FakeHaproxy, Path, dict[str, dict[str, t.Any]]], tmp_path: Path) -> None:
    _fake, _certdir, args = setup
    where = isolated_path(tmp_path, ["requests"])
    for module in ("acme_account", "acme_stateless_order", "haproxy_runtime_cert"):
        assert missing(run_module(module, args[module], where, tmp_path), "cryptography"), module


def test_without_requests(setup: tuple[FakeHaproxy, Path, dict[str, dict[str, t.Any]]], tmp_path: Path) -> None:
    fake, certdir, args = setup
    where = isolated_path(tmp_path, CRYPTOGRAPHY)
    for module in ("acme_account", "acme_stateless_order"):
        assert missing(run_module(module, args[module], where, tmp_path), "requests"), module
    pushed = run_module("haproxy_runtime_cert", args["haproxy_runtime_cert"], where, tmp_path)
    assert not pushed.get("failed") and pushed["action"] == "created", pushed
    assert str(certdir / "a.test.pem") in fake.state.lists[str(certdir)]
