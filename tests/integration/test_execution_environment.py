# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The execution environment: what the built collection declares, the image definition, the credential type.

Two files, because ansible-builder reads their paths from two different places:

- ``meta/execution-environment.yml`` is what ``ansible-builder introspect`` reads from
  every collection an EE build installs; its paths are relative to the collection root.
  It must be in the built collection, or an EE that installs it gets no cryptography,
  no requests and no ssh client from it.
- ``extensions/awx/execution-environment.yml`` is an image definition for
  ``ansible-builder create`` / ``build``; its paths are relative to the file itself. It
  must work from a checkout and from the installed collection alike.

These tests need ansible-builder (requirements/dev.txt); they skip where it is not
installed next to the interpreter, as inside the trixie_lab stage's node.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

yaml = importlib.import_module("yaml")  # PyYAML comes with ansible-core; no stubs needed

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BUILDER = BIN / "ansible-builder"
GALAXY = BIN / "ansible-galaxy"
IMAGE_DEFINITION = "extensions/awx/execution-environment.yml"

needs_builder = pytest.mark.skipif(not BUILDER.exists(), reason="ansible-builder is not installed in the venv")


def _run(argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{argv}\n{proc.stdout}{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The collection as Galaxy gets it (``ansible-galaxy collection build``) and installed from that tarball.

    Returns (tarball, collections dir holding ansible_collections/tlsops/haproxy_acme)."""
    work = tmp_path_factory.mktemp("built")
    _run([str(GALAXY), "collection", "build", "--output-path", str(work), str(ROOT)])
    tarball = next(work.glob("tlsops-haproxy_acme-*.tar.gz"))
    collections = work / "collections"
    # A local tarball without dependencies installs offline; --force, because the checkout itself
    # is already installed on ANSIBLE_COLLECTIONS_PATH (build/collections) and would be "already installed".
    _run([str(GALAXY), "collection", "install", "--offline", "--force", "-p", str(collections), str(tarball)])
    return tarball, collections


def _installed(collections: Path) -> Path:
    return collections / "ansible_collections" / "tlsops" / "haproxy_acme"


def test_built_collection_ships_the_ee_files(built: tuple[Path, Path]) -> None:
    tarball, _ = built
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
        files = json.load(tar.extractfile("FILES.json"))  # type: ignore[arg-type]
    for path in ("meta/execution-environment.yml", "meta/ee-requirements.txt", "meta/ee-bindep.txt",
                 IMAGE_DEFINITION, "extensions/awx/credential_type_acme_account.yml"):
        assert path in names, path
    # What the Galaxy page must not point at: the checkout's development tools are not shipped.
    shipped = {f["name"] for f in files["files"]}
    for path in ("bench", "scripts", "requirements", "Makefile"):
        assert path not in shipped and not any(n.startswith(path + "/") for n in shipped), path


def test_readme_links_point_at_shipped_files(built: tuple[Path, Path]) -> None:
    """Galaxy shows README.md; each relative link in it must be a file of the built collection."""
    _, collections = built
    installed = _installed(collections)
    readme = (installed / "README.md").read_text()
    links = [m for m in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme) if "://" not in m]
    assert links, "README.md links to no file"
    missing = [link for link in links if not (installed / link).exists()]
    assert not missing, f"README.md links to files the collection does not ship: {missing}"


@needs_builder
def test_introspect_lists_the_collections_requirements(built: tuple[Path, Path], tmp_path: Path) -> None:
    """What every EE build that installs the collection adds to the image."""
    _, collections = built
    pip, bindep = tmp_path / "requirements.txt", tmp_path / "bindep.txt"
    proc = _run([str(BUILDER), "introspect", str(collections), "--write-pip", str(pip), "--write-bindep", str(bindep)],
                timeout=120)
    data = yaml.safe_load(proc.stdout)
    python = [line.split("#")[0].strip() for line in data["python"]]
    system = [line.split("#")[0].strip() for line in data["system"]]
    assert python == ["cryptography>=38", "requests>=2.28"], proc.stdout
    assert system == ["openssh-clients [platform:rpm]", "openssh-client [platform:dpkg]"], proc.stdout
    assert all("from collection tlsops.haproxy_acme" in line for line in data["python"] + data["system"])
    # The same requirement files the image definition names, line for line.
    wanted_pip = [ln for ln in (ROOT / "meta/ee-requirements.txt").read_text().splitlines() if ln and ln[0] != "#"]
    wanted_sys = [ln for ln in (ROOT / "meta/ee-bindep.txt").read_text().splitlines() if ln and ln[0] != "#"]
    assert python == wanted_pip and system == wanted_sys
    assert "cryptography" in pip.read_text() and "openssh-clients" in bindep.read_text()


def _create(definition: Path, context: Path) -> None:
    _run([str(BUILDER), "create", "-f", str(definition), "-c", str(context), "--output-filename", "Containerfile"],
         timeout=120)
    containerfile = (context / "Containerfile").read_text()
    assert "ansible-core>=2.17" in containerfile and "ansible-runner" in containerfile
    assert "cryptography" in (context / "_build/requirements.txt").read_text()
    assert "openssh-clients" in (context / "_build/bindep.txt").read_text()
    galaxy = yaml.safe_load((context / "_build/requirements.yml").read_text())
    assert [c["name"] for c in galaxy["collections"]] == ["tlsops.haproxy_acme"]


@needs_builder
def test_ansible_builder_create_from_checkout(tmp_path: Path) -> None:
    _create(ROOT / IMAGE_DEFINITION, tmp_path / "context")


@needs_builder
def test_ansible_builder_create_from_installed_collection(built: tuple[Path, Path], tmp_path: Path) -> None:
    _, collections = built
    _create(_installed(collections) / IMAGE_DEFINITION, tmp_path / "context")


def test_awx_credential_type() -> None:
    definition = yaml.safe_load((ROOT / "extensions/awx/credential_type_acme_account.yml").read_text())
    fields = {f["id"]: f for f in definition["inputs"]["fields"]}
    assert fields["account_key"]["secret"] and fields["account_key"]["multiline"]
    assert fields["eab_hmac_key"]["secret"] and not fields["eab_kid"].get("secret")
    assert definition["inputs"]["required"] == ["account_key"]
    assert definition["injectors"]["extra_vars"] == {
        "haproxy_acme_eab_kid": "{{ eab_kid }}",
        "haproxy_acme_account_key_content": "{{ account_key }}",
        "haproxy_acme_eab_hmac_key": "{{ eab_hmac_key }}",
    }
