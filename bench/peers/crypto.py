# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""community.crypto's ``acme_certificate`` loop, from PyPI's ``ansible`` package in its own virtualenv.

One ansible-playbook run per batch, the classic two steps of the module's documentation:
a key and a CSR per certificate, ``acme_certificate`` to get the challenges, the HTTP-01
files written into a web root, ``acme_certificate`` again with ``data`` to finish. A small
HTTP server (Python's ``http.server``) serves the web root on the validator's port, started
before the clock as a web server already running would be.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import typing as t
from pathlib import Path

from . import Target, Unavailable, ca_env, run, venv

NAME = "community.crypto"
REQUIREMENT = "ansible==12.3.0"

PLAY = [{
    "name": "Certificates with community.crypto.acme_certificate",
    "hosts": "localhost",
    "gather_facts": False,
    "tasks": [
        {"name": "Private keys", "loop": "{{ names }}",
         "community.crypto.openssl_privatekey": {"path": "{{ certs }}/{{ item }}.key", "type": "ECC",
                                                 "curve": "secp256r1"}},
        {"name": "CSRs", "loop": "{{ names }}",
         "community.crypto.openssl_csr": {"path": "{{ certs }}/{{ item }}.csr",
                                          "privatekey_path": "{{ certs }}/{{ item }}.key",
                                          "common_name": "{{ item }}", "subject_alt_name": "DNS:{{ item }}"}},
        {"name": "Orders and their challenges", "loop": "{{ names }}", "register": "challenge",
         "community.crypto.acme_certificate": {
             "acme_version": 2, "acme_directory": "{{ directory }}", "account_key_src": "{{ account_key }}",
             "terms_agreed": True, "modify_account": True, "csr": "{{ certs }}/{{ item }}.csr",
             "dest": "{{ certs }}/{{ item }}.crt", "fullchain_dest": "{{ certs }}/{{ item }}-fullchain.crt"}},
        {"name": "HTTP-01 files", "loop": "{{ challenge.results }}", "loop_control": {"label": "{{ item.item }}"},
         "when": "item is changed",
         "ansible.builtin.copy": {"dest": "{{ webroot }}/{{ item.challenge_data[item.item]['http-01'].resource }}",
                                  "content": "{{ item.challenge_data[item.item]['http-01'].resource_value }}",
                                  "mode": "0644"}},
        {"name": "Validate, finalize, download", "loop": "{{ challenge.results }}",
         "loop_control": {"label": "{{ item.item }}"}, "when": "item is changed",
         "community.crypto.acme_certificate": {
             "acme_version": 2, "acme_directory": "{{ directory }}", "account_key_src": "{{ account_key }}",
             "modify_account": False, "csr": "{{ certs }}/{{ item.item }}.csr", "data": "{{ item }}",
             "dest": "{{ certs }}/{{ item.item }}.crt",
             "fullchain_dest": "{{ certs }}/{{ item.item }}-fullchain.crt"}},
    ],
}]


def _collection_version(playbook: Path) -> str:
    manifest = (playbook.parent.parent / "lib").glob("python3*/site-packages/ansible_collections/community/crypto/"
                                                     "MANIFEST.json")
    for path in manifest:
        return str(json.loads(path.read_text())["collection_info"]["version"])
    raise Unavailable("the ansible package holds no community.crypto")


def callback_source(name: str) -> str:
    """The text of one of ansible.posix's callback plugins, from the ``ansible`` package's virtualenv."""
    playbook = venv("ansible", REQUIREMENT, "ansible-playbook")
    for path in (playbook.parent.parent / "lib").glob(f"python3*/site-packages/ansible_collections/ansible/posix/"
                                                      f"plugins/callback/{name}.py"):
        return path.read_text()
    raise Unavailable(f"the ansible package holds no ansible.posix.{name}")


def install() -> str:
    playbook = venv("ansible", REQUIREMENT, "ansible-playbook")
    core = subprocess.run([str(playbook), "--version"], capture_output=True, text=True, check=False)
    if core.returncode != 0:
        raise Unavailable(f"ansible-playbook --version failed: {core.stderr.strip()}")
    return (f"community.crypto {_collection_version(playbook)} ({REQUIREMENT.replace('==', ' ')}, "
            f"{core.stdout.splitlines()[0].replace('ansible-playbook [core ', 'ansible-core ').rstrip(']')})")


class Peer:
    def __init__(self, target: Target, work: Path, account_key: str) -> None:
        self.playbook = venv("ansible", REQUIREMENT, "ansible-playbook")
        self.home = work / "community.crypto"
        self.webroot = self.home / "webroot"
        (self.webroot / ".well-known" / "acme-challenge").mkdir(parents=True)
        (self.home / "certs").mkdir()
        (self.home / "collections").mkdir()
        self.play = self.home / "play.yml"
        self.play.write_text(json.dumps(PLAY, indent=1))
        self.vars = {"directory": target.directory, "account_key": account_key, "certs": str(self.home / "certs"),
                     "webroot": str(self.webroot), "ansible_python_interpreter": str(self.playbook.parent / "python")}
        self.env = {**ca_env(target.ca_path), "ANSIBLE_LOCALHOST_WARNING": "false",
                    "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false", "ANSIBLE_NOCOLOR": "1",
                    # the venv's own collections only, not the ones this project's Makefile points at
                    "ANSIBLE_COLLECTIONS_PATH": str(self.home / "collections")}
        self.port = target.http_port

    @contextlib.contextmanager
    def web_server(self) -> t.Iterator[None]:
        """The web root served on the validator's port, started before the clock (the other peers take the
        port with their own servers in between)."""
        server = subprocess.Popen(
            [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(self.webroot),
             str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError(f"http.server did not listen on port {self.port}") from None
                    time.sleep(0.02)
            yield
        finally:
            server.terminate()
            server.wait(timeout=10)

    def warm(self) -> None:
        self.issue(["warm-crypto.bench.example"])

    def issue(self, names: t.Sequence[str]) -> float:
        extra = self.home / "vars.json"
        extra.write_text(json.dumps({**self.vars, "names": list(names)}))
        with self.web_server():
            return run([str(self.playbook), "-i", "localhost,", "-c", "local", "-e", f"@{extra}", str(self.play)],
                       env=self.env)
